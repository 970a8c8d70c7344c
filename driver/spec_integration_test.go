//go:build integration

package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
)

// runOutput runs a batch task to completion and returns its stdout.
func runOutput(t *testing.T, b *bed, pluginHCL string, task *drivers.TaskConfig) (string, *drivers.ExitResult) {
	t.Helper()
	h := b.harness(t, pluginHCL)
	start(t, h, task)
	res := wait(t, h, task.ID, 30*time.Second)
	var out string
	eventually(t, "output", func() bool { out = logs(t, task, "stdout"); return strings.Contains(out, "END") })
	return out, res
}

func testSpec(t *testing.T, b *bed) {
	cases := []struct {
		name  string
		raw   rawTaskConfig
		edit  func(*drivers.TaskConfig)
		wants []string
	}{
		{name: "user", raw: sh("id -u; id -g; echo END"), edit: func(c *drivers.TaskConfig) { c.User = "nobody" },
			wants: []string{"65534\n65534\n"}},
		{name: "numeric user", raw: sh("id -u; echo END"), edit: func(c *drivers.TaskConfig) { c.User = "1000:1000" }, wants: []string{"1000\n"}},
		{name: "work_dir", raw: rawTaskConfig{Command: "sh", Args: []string{"-c", "pwd; echo END"}, WorkDir: "/tmp"}, wants: []string{"/tmp\n"}},
		{name: "entrypoint", raw: rawTaskConfig{Entrypoint: []string{"/bin/echo", "from-entrypoint"}, Args: []string{"END"}}, wants: []string{"from-entrypoint END"}},
		{name: "env", raw: sh("echo A=$A; echo PATH=$PATH; echo END"), edit: func(c *drivers.TaskConfig) { c.Env["A"] = "from-nomad" },
			wants: []string{"A=from-nomad", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		{name: "hostname", raw: rawTaskConfig{Command: "sh", Args: []string{"-c", "hostname; grep web-host /etc/hosts; echo END"}, Hostname: "web-host"},
			wants: []string{"web-host\n", "127.0.1.1\tweb-host"}},
		{name: "task dirs", raw: sh("ls -d /alloc /local /secrets; echo $NOMAD_TASK_DIR; touch /alloc/logs/x 2>/dev/null || echo logs-ro; echo END"),
			wants: []string{"/alloc\n/local\n/secrets\n", "/local\n", "logs-ro"}},
		{name: "readonly rootfs", raw: rawTaskConfig{Command: "sh", Args: []string{"-c", "touch /x 2>/dev/null || echo rootfs-ro; touch /local/y && echo local-rw; echo END"}, ReadonlyRootfs: true},
			wants: []string{"rootfs-ro", "local-rw"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			task := newTask(t, c.raw)
			if c.edit != nil {
				task.Env = map[string]string{}
				c.edit(task)
			}
			out, res := runOutput(t, b, "", task)
			must.Eq(t, 0, res.ExitCode, must.Sprint(out))
			for _, w := range c.wants {
				must.StrContains(t, out, w)
			}
		})
	}
}

func testCaps(t *testing.T, b *bed) {
	cases := []struct {
		name   string
		plugin string
		raw    rawTaskConfig
		want   string // CapEff
	}{
		// Nomad's default set: chown dac_override fsetid fowner mknod setgid
		// setuid setfcap setpcap net_bind_service sys_chroot kill audit_write
		{name: "defaults", raw: sh("grep CapEff /proc/self/status; echo END"), want: "CapEff:\t00000000a80405fb"},
		{name: "drop all add chown", raw: rawTaskConfig{Command: "sh", Args: []string{"-c", "grep CapEff /proc/self/status; echo END"}, CapDrop: []string{"all"}, CapAdd: []string{"chown"}},
			want: "CapEff:\t0000000000000001"},
		{name: "net_raw when allowed", plugin: `allow_caps = ["chown", "net_raw"]`,
			raw:  rawTaskConfig{Command: "sh", Args: []string{"-c", "grep CapEff /proc/self/status; echo END"}, CapAdd: []string{"net_raw"}},
			want: "CapEff:\t0000000000002001"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _ := runOutput(t, b, c.plugin, newTask(t, c.raw))
			must.StrContains(t, out, c.want)
		})
	}
}

func testBinds(t *testing.T, b *bed) {
	host := t.TempDir()
	must.NoError(t, os.WriteFile(filepath.Join(host, "in"), []byte("from-host\n"), 0o644))
	plugin := "volumes {\n enabled = true\n allowed_host_paths = [\"" + host + "\"]\n}"
	raw := sh("cat /rw/in; echo task > /rw/out; cat /ro/in; touch /ro/x 2>/dev/null || echo ro-refused; cat /exec2/in; echo END")
	raw.Volumes = []string{host + ":/rw"}
	raw.BindReadOnly = []map[string]string{{host: "/exec2"}}
	raw.Mount = []rawMount{{Type: "bind", Source: host, Target: "/ro", ReadOnly: true}}
	out, res := runOutput(t, b, plugin, newTask(t, raw))
	must.Eq(t, 0, res.ExitCode, must.Sprint(out))
	must.Eq(t, 3, strings.Count(out, "from-host"))
	must.StrContains(t, out, "ro-refused")
	got, err := os.ReadFile(filepath.Join(host, "out"))
	must.NoError(t, err)
	must.Eq(t, "task\n", string(got))
	_, err = os.Stat(filepath.Join(host, "x"))
	must.True(t, os.IsNotExist(err))
}

// testRefusals checks that every refused start names the field and value
// and leaves no container or snapshot behind.
func testRefusals(t *testing.T, b *bed) {
	host := t.TempDir()
	cases := []struct {
		name string
		raw  rawTaskConfig
		err  string
	}{
		{name: "privileged", raw: rawTaskConfig{Privileged: true}, err: "privileged: true is refused"},
		{name: "cap_add", raw: rawTaskConfig{CapAdd: []string{"sys_admin"}}, err: "cap_add:"},
		{name: "volume", raw: rawTaskConfig{Volumes: []string{host + ":/data"}}, err: `volumes[0]: host path "` + host + `" is refused`},
		{name: "bind", raw: rawTaskConfig{Bind: []map[string]string{{host: "/data"}}}, err: "is refused"},
		{name: "mount", raw: rawTaskConfig{Mount: []rawMount{{Type: "bind", Source: host, Target: "/d"}}}, err: "mount[0]: host path"},
		{name: "host pid", raw: rawTaskConfig{PIDMode: "host"}, err: `pid_mode: "host" is refused`},
		{name: "missing image", raw: rawTaskConfig{Image: "127.0.0.1:1/nope/none:1"}, err: "127.0.0.1:1/nope/none:1"},
		{name: "command not found", raw: rawTaskConfig{Command: "/no/such/binary"}, err: "/no/such/binary"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { b.refusedStart(t, "image_pull_timeout = \"5s\"", c.raw, c.err) })
	}
}

// refusedStart checks that starting raw under the plugin config fails with
// an error containing want, and leaves no container, snapshot, lease or
// task behind.
func (b *bed) refusedStart(t *testing.T, pluginHCL string, raw rawTaskConfig, want string) {
	t.Helper()
	h := b.harness(t, pluginHCL)
	task := newTask(t, raw)
	t.Cleanup(h.MkAllocDir(task, true))
	_, _, err := h.StartTask(task)
	must.Error(t, err)
	must.StrContains(t, err.Error(), want)
	b.nothingLeft(t, task)
	_, err = h.InspectTask(task.ID)
	must.Error(t, err)
}

// testResources reads the limits the kernel holds for the task's cgroup.
func testResources(t *testing.T, b *bed) {
	h := b.harness(t, "")
	task := newTask(t, rawTaskConfig{Command: "sleep", Args: []string{"300"}, PidsLimit: 42})
	task.Resources.NomadResources.Memory.MemoryMB = 64
	task.Resources.NomadResources.Memory.MemoryMaxMB = 96
	task.Resources.LinuxResources.CPUShares = 512
	start(t, h, task)
	id := "web-" + task.AllocID
	v2 := "/sys/fs/cgroup/" + b.cd.Namespace + "/" + id + "/"
	if _, err := os.Stat(v2 + "cgroup.procs"); err == nil {
		must.Eq(t, "100663296", readTrim(t, v2+"memory.max"))
		must.Eq(t, "67108864", readTrim(t, v2+"memory.low"))
		must.Eq(t, "42", readTrim(t, v2+"pids.max"))
		return
	}
	v1 := func(ctrl, file string) string {
		return readTrim(t, filepath.Join("/sys/fs/cgroup", ctrl, b.cd.Namespace, id, file))
	}
	must.Eq(t, "100663296", v1("memory", "memory.limit_in_bytes"))
	must.Eq(t, "67108864", v1("memory", "memory.soft_limit_in_bytes"))
	must.Eq(t, "42", v1("pids", "pids.max"))
	must.Eq(t, "512", v1("cpu", "cpu.shares"))
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must.NoError(t, err)
	return strings.TrimSpace(string(b))
}
