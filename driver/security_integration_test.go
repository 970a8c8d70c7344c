//go:build integration

package driver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestDriverSecurity attacks every default of DESIGN.md 6 through the
// driver and checks the host afterwards.
func TestDriverSecurity(t *testing.T) {
	b := newCheckedBed(t)
	t.Run("host paths", func(t *testing.T) { testHostPathAttacks(t, b) })
	t.Run("allocation boundary", func(t *testing.T) { testAllocBoundary(t, b) })
	t.Run("image store", func(t *testing.T) { testImageStore(t, b) })
	t.Run("path swapped between check and mount", func(t *testing.T) { testSwapAfterCheck(t, b) })
	t.Run("namespaces", func(t *testing.T) { testNamespaces(t, b) })
	t.Run("privileges", func(t *testing.T) { testPrivileges(t, b) })
	t.Run("sysctl", func(t *testing.T) { testSysctl(t, b) })
	t.Run("devices", func(t *testing.T) { testDevices(t, b) })
	t.Run("proc paths", func(t *testing.T) { testProcPaths(t, b) })
	t.Run("seccomp", func(t *testing.T) { testSeccomp(t, b) })
	t.Run("log fifos", func(t *testing.T) { testLogFifos(t, b) })
	t.Run("hostile images", func(t *testing.T) { testHostileImages(t, b) })
	t.Run("runc fingerprint", func(t *testing.T) { testRuncFingerprint(t, b) })
}

// canary is a host directory holding one file that no attack may change,
// and to which no attack may add anything.
type canary struct{ dir, file string }

const canaryData = "host data, not for tasks\n"

func newCanary(t *testing.T) canary {
	dir := t.TempDir()
	c := canary{dir: dir, file: filepath.Join(dir, testbed.CanaryName)}
	must.NoError(t, os.WriteFile(c.file, []byte(canaryData), 0o644))
	return c
}

func (c canary) check(t *testing.T) {
	t.Helper()
	got, err := os.ReadFile(c.file)
	must.NoError(t, err)
	must.Eq(t, canaryData, string(got), must.Sprint("the canary file was changed"))
	entries, err := os.ReadDir(c.dir)
	must.NoError(t, err)
	must.Len(t, 1, entries, must.Sprintf("something was added to the host directory: %v", entries))
	st, err := os.Stat(c.file)
	must.NoError(t, err)
	must.Eq(t, os.FileMode(0o644), st.Mode().Perm())
}

// startWith starts task under a harness with pluginHCL; prep runs once
// the task's directories exist.
func startWith(t *testing.T, b *bed, pluginHCL string, task *drivers.TaskConfig, prep func(*drivers.TaskConfig)) (*testbed.Harness, error) {
	t.Helper()
	h := b.harness(t, pluginHCL)
	t.Cleanup(h.MkAllocDir(task, true))
	if prep != nil {
		prep(task)
	}
	_, _, err := h.StartTask(task)
	return h, err
}

// refuse starts task, which must fail with an error containing want and
// leave nothing behind.
func refuse(t *testing.T, b *bed, pluginHCL string, task *drivers.TaskConfig, prep func(*drivers.TaskConfig), want string) {
	t.Helper()
	_, err := startWith(t, b, pluginHCL, task, prep)
	must.ErrorContains(t, err, want)
	b.nothingLeft(t, task)
}

// runWith runs a batch task to its end and returns its stdout.
func runWith(t *testing.T, b *bed, pluginHCL string, task *drivers.TaskConfig, prep func(*drivers.TaskConfig)) string {
	t.Helper()
	h, err := startWith(t, b, pluginHCL, task, prep)
	must.NoError(t, err)
	impl := h.Impl()
	t.Cleanup(func() { _ = impl.DestroyTask(task.ID, true) })
	res := wait(t, h, task.ID, 30*time.Second)
	var out string
	eventually(t, "output", func() bool { out = logs(t, task, "stdout"); return strings.Contains(out, "END") })
	must.Eq(t, 0, res.ExitCode, must.Sprint(out))
	return out
}

func volumesPlugin(allowed ...string) string {
	return fmt.Sprintf("volumes {\n enabled = true\n allowed_host_paths = %s\n}", hclList(allowed))
}

func hclList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func testHostPathAttacks(t *testing.T, b *bed) {
	c := newCanary(t)
	allowed := t.TempDir()
	must.NoError(t, os.Symlink(c.dir, filepath.Join(allowed, "escape")))
	plugin := volumesPlugin(allowed)
	const attack = "echo pwned > /data/" + testbed.CanaryName + "; echo pwned > /data/new; echo END"
	plant := func(task *drivers.TaskConfig) {
		must.NoError(t, os.Symlink(c.dir, filepath.Join(task.TaskDir().LocalDir, "evil")))
	}
	cases := []struct {
		name, plugin string
		edit         func(*rawTaskConfig)
		prep         func(*drivers.TaskConfig)
		err          string
	}{
		{name: "volumes disabled", edit: func(r *rawTaskConfig) { r.Volumes = []string{c.dir + ":/data"} },
			err: `volumes[0]: host path "` + c.dir + `" is refused: binding host paths needs plugin option volumes.enabled = true`},
		{name: "outside the allowed prefix", plugin: plugin, edit: func(r *rawTaskConfig) { r.Volumes = []string{c.dir + ":/data"} },
			err: "is outside volumes.allowed_host_paths"},
		{name: "dot-dot out of the task dir", plugin: plugin, edit: func(r *rawTaskConfig) {
			r.Volumes = []string{strings.Repeat("../", 24) + c.dir + ":/data"}
		}, err: `(resolved to "` + c.dir + `") is outside`},
		{name: "symlink planted in the task dir", plugin: plugin, prep: plant,
			edit: func(r *rawTaskConfig) { r.Volumes = []string{"local/evil:/data"} }, err: `volumes[0]: host path "local/evil" (resolved to "` + c.dir + `")`},
		{name: "symlink planted, volumes disabled", prep: plant,
			edit: func(r *rawTaskConfig) { r.Mount = []rawMount{{Type: "bind", Source: "local/evil", Target: "/data"}} }, err: `mount[0]: host path "local/evil" is refused`},
		{name: "symlink under the allowed prefix", plugin: plugin,
			edit: func(r *rawTaskConfig) { r.Bind = []map[string]string{{filepath.Join(allowed, "escape"): "/data"}} }, err: "is outside volumes.allowed_host_paths"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := sh(attack)
			tc.edit(&raw)
			refuse(t, b, tc.plugin, newTask(t, raw), tc.prep, tc.err)
			c.check(t)
		})
	}
	// the same attack where it is allowed does write: the checks above can fail
	t.Run("allowed prefix is writable", func(t *testing.T) {
		raw := sh(attack)
		raw.Volumes = []string{allowed + ":/data"}
		runWith(t, b, plugin, newTask(t, raw), nil)
		got, err := os.ReadFile(filepath.Join(allowed, "new"))
		must.NoError(t, err)
		must.Eq(t, "pwned\n", string(got))
	})
}

// testSwapAfterCheck swaps a checked bind source for a symlink to the host
// between the plan and runc's mount, as another task of the allocation
// could: runc mounts the host directory, and the verification refuses the
// container before its process runs.
func testSwapAfterCheck(t *testing.T, b *bed) {
	c := newCanary(t)
	cfg := testTask(t)
	data := filepath.Join(cfg.TaskDir().SharedAllocDir, "data")
	must.NoError(t, os.MkdirAll(data, 0o755))
	tc, err := parseTaskConfig(rawTaskConfig{Image: testImage, Command: "sh", Args: []string{"-c", "echo pwned > /data/canary"}, Volumes: []string{"../alloc/data:/data"}})
	must.NoError(t, err)
	p, err := planTask(defaultConfig(t), cfg, tc)
	must.NoError(t, err)
	defer p.pins.close()

	must.NoError(t, os.Rename(data, data+".old"))
	must.NoError(t, os.Symlink(c.dir, data))

	ctx := namespaces.WithNamespace(context.Background(), b.cd.Namespace)
	img, err := b.cd.Client.GetImage(ctx, testImage)
	must.NoError(t, err)
	rt := executor.New(b.cd.Client, b.cd.Namespace, nil)
	task, err := rt.Create(ctx, executor.ContainerConfig{ID: p.containerID, Image: img, Snapshotter: "overlayfs", Spec: p.spec})
	must.NoError(t, err)
	t.Cleanup(func() { _ = rt.Remove(context.Background(), p.containerID) })
	// the attack reached the mount: the host directory is at /data
	_, err = os.Stat(fmt.Sprintf("/proc/%d/root/data/%s", task.PID(), testbed.CanaryName))
	must.NoError(t, err, must.Sprint("the swap did not reach the mount; the test proves nothing"))

	err = p.pins.verify(task.PID())
	must.ErrorContains(t, err, `volumes[0]: what is mounted at /data is not the checked source "`+data+`"`)
	must.NoError(t, task.Delete(ctx, true))
	c.check(t)
}

func testNamespaces(t *testing.T, b *bed) {
	kinds := []string{"pid", "ipc", "uts", "mnt", "net"}
	host := map[string]string{}
	for _, k := range kinds {
		l, err := os.Readlink("/proc/self/ns/" + k)
		must.NoError(t, err)
		host[k] = l
	}
	script := "for n in " + strings.Join(kinds, " ") + "; do echo $n=$(readlink /proc/self/ns/$n); done; echo END"
	inside := func(out, kind string) string {
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, kind+"="); ok {
				return v
			}
		}
		t.Fatalf("no %s namespace in %q", kind, out)
		return ""
	}

	out := runWith(t, b, "", newTask(t, sh(script)), nil)
	for _, k := range []string{"pid", "ipc", "uts", "mnt"} {
		must.NotEq(t, host[k], inside(out, k), must.Sprintf("the task shares the host's %s namespace by default", k))
	}

	raw := sh(script)
	raw.PIDMode, raw.IPCMode = modeHost, modeHost
	refuse(t, b, "allow_host_ipc = true", newTask(t, raw), nil, `pid_mode: "host" is refused: the plugin needs allow_host_pid = true`)
	refuse(t, b, "allow_host_pid = true", newTask(t, raw), nil, `ipc_mode: "host" is refused: the plugin needs allow_host_ipc = true`)

	out = runWith(t, b, "allow_host_pid = true\nallow_host_ipc = true", newTask(t, raw), nil)
	must.Eq(t, host["pid"], inside(out, "pid"))
	must.Eq(t, host["ipc"], inside(out, "ipc"))
}

func testPrivileges(t *testing.T, b *bed) {
	status := "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 || echo ping-refused; echo END"
	out := runWith(t, b, "", newTask(t, sh(status)), nil)
	// Nomad's default set, without NET_RAW (bit 13)
	must.StrContains(t, out, "CapEff:\t00000000a80405fb\n")
	must.StrContains(t, out, "CapBnd:\t00000000a80405fb\n")
	must.StrContains(t, out, "NoNewPrivs:\t1\n")
	must.StrContains(t, out, "Seccomp:\t2\n")
	must.StrContains(t, out, "ping-refused")

	raw := sh(status)
	raw.NoNewPrivileges = boolPtr(false)
	out = runWith(t, b, "", newTask(t, raw), nil)
	must.StrContains(t, out, "NoNewPrivs:\t0\n")
	refuse(t, b, "no_new_privileges = true", newTask(t, raw), nil, "no_new_privileges: false is refused: the plugin sets no_new_privileges = true")

	refuse(t, b, "", newTask(t, rawTaskConfig{Privileged: true}), nil, "privileged: true is refused: the plugin needs allow_privileged = true")
	refuse(t, b, "", newTask(t, rawTaskConfig{CapAdd: []string{"sys_admin", "net_raw"}}), nil, "cap_add:")

	hardened := sh("touch /bin/x 2>/dev/null || echo rootfs-ro; touch /tmp/x 2>/dev/null || echo tmp-ro; grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; echo END")
	hardened.ReadonlyRootfs, hardened.CapDrop = true, []string{"all"}
	out = runWith(t, b, "no_new_privileges = true", newTask(t, hardened), nil)
	must.StrContains(t, out, "rootfs-ro")
	must.StrContains(t, out, "tmp-ro")
	must.StrContains(t, out, "CapEff:\t0000000000000000\n")
	must.StrContains(t, out, "NoNewPrivs:\t1\n")
}

func boolPtr(v bool) *bool { return &v }

func testSysctl(t *testing.T, b *bed) {
	hostValue := readTrim(t, "/proc/sys/net/core/somaxconn")
	want := "777"
	if hostValue == want {
		want = "778"
	}
	raw := sh("cat /proc/sys/net/core/somaxconn; echo END")
	raw.NetworkMode = wordNone
	raw.Sysctl = []map[string]string{{"net.core.somaxconn": want}}
	out := runWith(t, b, "", newTask(t, raw), nil)
	must.StrContains(t, out, want+"\n")
	must.Eq(t, hostValue, readTrim(t, "/proc/sys/net/core/somaxconn"))

	hostNet := sh("echo END")
	hostNet.Sysctl = []map[string]string{{"net.core.somaxconn": want}}
	refuse(t, b, "", newTask(t, hostNet), nil, `sysctl: "net.core.somaxconn" is refused: the task uses the host's network namespace`)
	global := sh("echo END")
	global.Sysctl = []map[string]string{{"kernel.core_pattern": "|/tmp/pwned"}}
	refuse(t, b, "", newTask(t, global), nil, `sysctl: "kernel.core_pattern" is refused: it is not namespaced`)
	ipc := sh("echo END")
	ipc.IPCMode = modeHost
	ipc.Sysctl = []map[string]string{{"kernel.shmmax": "1"}}
	refuse(t, b, "allow_host_ipc = true", newTask(t, ipc), nil, `sysctl: "kernel.shmmax" is refused: the task shares the host's IPC namespace`)
	must.Eq(t, hostValue, readTrim(t, "/proc/sys/net/core/somaxconn"))
}

func testDevices(t *testing.T, b *bed) {
	// mknod is in Nomad's default capabilities (and runc lets any node be
	// made); a node of the host's memory still cannot be opened
	const mknod = "mknod /tmp/mem c 1 1 && (head -c 1 /tmp/mem >/dev/null 2>&1 || echo mem-refused); "
	out := runWith(t, b, "", newTask(t, sh(mknod+"echo END")), nil)
	must.StrContains(t, out, "mem-refused")

	// /dev/fuse is harmless to open and not among the devices every
	// container gets (runc adds /dev/net/tun to those)
	const fuse = "mknod /tmp/fuse c 10 229 && (exec 3</tmp/fuse) 2>/dev/null || echo fuse-refused; "
	out = runWith(t, b, "", newTask(t, sh(fuse+"echo END")), nil)
	must.StrContains(t, out, "fuse-refused")

	raw := sh("(exec 3</dev/ff) && echo read-open; (exec 3>/dev/ff) 2>/dev/null || echo write-refused; " + mknod + "echo END")
	raw.Devices = []string{"/dev/fuse:/dev/ff:r"}
	refuse(t, b, "", newTask(t, raw), nil, `devices[0]: host device "/dev/fuse" is refused: the plugin's allowed_devices is empty`)
	refuse(t, b, `allowed_devices = ["/dev/null", "/dev/net/*"]`, newTask(t, raw), nil, `devices[0]: host device "/dev/fuse" (resolved to "/dev/fuse") is not in the plugin's allowed_devices`)
	out = runWith(t, b, `allowed_devices = ["/dev/fu*"]`, newTask(t, raw), nil)
	must.StrContains(t, out, "read-open")
	must.StrContains(t, out, "write-refused")
	must.StrContains(t, out, "mem-refused")
}

func testProcPaths(t *testing.T, b *bed) {
	// /proc/timer_list is one of the masked paths that has content on this host
	host, err := os.ReadFile("/proc/timer_list")
	must.NoError(t, err)
	must.Positive(t, len(host))
	out := runWith(t, b, "", newTask(t, sh("echo timer_list=$(wc -c < /proc/timer_list) keys=$(wc -c < /proc/keys); "+
		"echo 1 2>/dev/null > /proc/sysrq-trigger || echo sysrq-refused; echo x 2>/dev/null > /proc/sys/kernel/domainname || echo sys-ro; "+
		"echo x 2>/dev/null > /sys/kernel/uevent_helper || echo sysfs-ro; echo END")), nil)
	must.StrContains(t, out, "timer_list=0 keys=0\n")
	must.StrContains(t, out, "sysrq-refused")
	must.StrContains(t, out, "sys-ro")
	must.StrContains(t, out, "sysfs-ro")

	over := sh("echo END")
	over.Mount = []rawMount{{Type: "tmpfs", Target: "/proc/sys"}}
	refuse(t, b, "", newTask(t, over), nil, `mount[0]: mount destination "/proc/sys" is refused: it is under /proc`)
	cwd := sh("echo END")
	cwd.WorkDir = "/proc/self/fd/7"
	refuse(t, b, "", newTask(t, cwd), nil, `work_dir: "/proc/self/fd/7" is refused: it is under /proc`)
}

func testSeccomp(t *testing.T, b *bed) {
	profiles := t.TempDir()
	denyMkdir := filepath.Join(profiles, "deny-mkdir.json")
	must.NoError(t, os.WriteFile(denyMkdir, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`), 0o644))
	script := "mkdir /tmp/d 2>/dev/null && echo mkdir-ok || echo mkdir-denied; grep '^Seccomp:' /proc/self/status; echo END"

	out := runWith(t, b, "", newTask(t, sh(script)), nil)
	must.StrContains(t, out, "mkdir-ok")
	must.StrContains(t, out, "Seccomp:\t2\n")

	custom := sh(script)
	custom.SeccompProfile = denyMkdir
	refuse(t, b, "", newTask(t, custom), nil, `seccomp_profile: "`+denyMkdir+`" (resolved to "`+denyMkdir+`") is refused: it is not under the plugin's allowed_seccomp_profiles`)
	out = runWith(t, b, fmt.Sprintf("allowed_seccomp_profiles = [%q]", profiles), newTask(t, custom), nil)
	must.StrContains(t, out, "mkdir-denied")
	must.StrContains(t, out, "Seccomp:\t2\n")

	// a profile the task brings itself could allow everything
	own := sh(script)
	own.SeccompProfile = "local/allow-all.json"
	writeOwn := func(task *drivers.TaskConfig) {
		must.NoError(t, os.WriteFile(filepath.Join(task.TaskDir().LocalDir, "allow-all.json"), []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o644))
	}
	refuse(t, b, fmt.Sprintf("allowed_seccomp_profiles = [%q]", profiles), newTask(t, own), writeOwn, "is not under the plugin's allowed_seccomp_profiles")

	off := sh(script)
	off.Seccomp = boolPtr(false)
	refuse(t, b, "", newTask(t, off), nil, "seccomp: running without a seccomp profile is refused: the plugin needs allow_unconfined_seccomp = true")
	out = runWith(t, b, "allow_unconfined_seccomp = true", newTask(t, off), nil)
	must.StrContains(t, out, "Seccomp:\t0\n")
}

func testRuncFingerprint(t *testing.T, b *bed) {
	runc, err := testbed.RuncBin()
	must.NoError(t, err)
	v, err := exec.Command(runc, "--version").Output()
	must.NoError(t, err)
	var version, commit string
	for _, l := range strings.Split(string(v), "\n") {
		if s, ok := strings.CutPrefix(l, "runc version "); ok {
			version = s
		}
		if s, ok := strings.CutPrefix(l, "commit: "); ok {
			commit = s
		}
	}
	h := b.harness(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fp := firstFingerprint(ctx, t, h)
	got, _ := fp.Attributes["driver.containerd.runc.version"].GetString()
	must.Eq(t, version, got)
	want := checkRunc(version, commit).warning()
	var warning string
	if a, ok := fp.Attributes["driver.containerd.runc.warning"]; ok {
		warning, _ = a.GetString()
		must.NotEq(t, "", warning, must.Sprint("the warning attribute is set only with a warning"))
	}
	must.Eq(t, want, warning)
	t.Logf("runc %s (%s): %q", version, commit, warning)
	must.Eq(t, drivers.HealthStateHealthy, fp.Health)
}
