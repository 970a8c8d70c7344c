//go:build integration

package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
	"golang.org/x/sys/unix"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestDeviceReservations runs tasks with the devices Nomad's device
// plugins reserve and with CDI devices, over fake device nodes: copies of
// /dev/fuse (10:229, outside the devices every container may open) and
// /dev/zero (1:5).
func TestDeviceReservations(t *testing.T) {
	b := newBed(t)
	testbed.LeakCheck(t, b.cd)
	nodes := t.TempDir()
	fuse, zero := filepath.Join(nodes, "fake0"), filepath.Join(nodes, "fake1")
	must.NoError(t, unix.Mknod(fuse, unix.S_IFCHR|0o600, int(unix.Mkdev(10, 229))))
	must.NoError(t, unix.Mknod(zero, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))))
	baseline := devNames(t, runWith(t, b, "", newTask(t, sh(listDev+"echo END")), nil))

	t.Run("device plugin reservation", func(t *testing.T) { testReservation(t, b, baseline, fuse, zero) })
	t.Run("cdi devices", func(t *testing.T) { testCDIDevices(t, b, baseline, fuse) })
	t.Run("nvidia plugin's GPUs through CDI", func(t *testing.T) { testNvidiaCDI(t, b, baseline, fuse) })
}

// listDev prints the container's /dev, one DEV=<name> line per entry.
const listDev = "for f in $(ls -A /dev); do echo DEV=$f; done; "

// statDev prints the type, major:minor (hex) and mode of a node.
func statDev(p string) string {
	return fmt.Sprintf("echo STAT %s $(stat -c '%%F %%t:%%T %%a' %s); ", p, p)
}

// devNames is the sorted DEV= lines of a task's output.
func devNames(t *testing.T, out string) []string {
	t.Helper()
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(l, "DEV="); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	must.SliceNotEmpty(t, names)
	return names
}

// newInDev checks that the task's /dev holds exactly the baseline's
// entries and want.
func newInDev(t *testing.T, baseline []string, out string, want ...string) {
	t.Helper()
	all := append(append([]string{}, baseline...), want...)
	sort.Strings(all)
	must.Eq(t, all, devNames(t, out), must.Sprint(out))
}

func testReservation(t *testing.T, b *bed, baseline []string, fuse, zero string) {
	info := filepath.Join(t.TempDir(), "info")
	must.NoError(t, os.WriteFile(info, []byte("reserved fake0\n"), 0o644))
	reserve := func(task *drivers.TaskConfig) *drivers.TaskConfig {
		task.Devices = []*drivers.DeviceConfig{
			{HostPath: fuse, TaskPath: "/dev/fake0", Permissions: "r"},
			{HostPath: zero, TaskPath: "/dev/fake1", Permissions: "rw"},
		}
		task.Mounts = []*drivers.MountConfig{{HostPath: info, TaskPath: "/var/run/fake/info", Readonly: true}}
		task.DeviceEnv = map[string]string{"FAKE_DEVICES": "fake0,fake1"}
		task.Env = map[string]string{"FAKE_DEVICES": "fake0,fake1"}
		return task
	}
	script := listDev + statDev("/dev/fake0") + statDev("/dev/fake1") +
		"(exec 3</dev/fake0) && echo fake0-read-open; (exec 3>/dev/fake0) 2>/dev/null || echo fake0-write-refused; " +
		"head -c 4 /dev/fake1 | wc -c | sed 's/^/fake1-read=/'; (echo x >/dev/fake1) && echo fake1-write-ok; " +
		"cat /var/run/fake/info; (echo x >/var/run/fake/info) 2>/dev/null || echo info-read-only; echo env=$FAKE_DEVICES; echo END"
	out := runWith(t, b, "", reserve(newTask(t, sh(script))), nil)
	newInDev(t, baseline, out, "fake0", "fake1")
	must.StrContains(t, out, "STAT /dev/fake0 character special file a:e5 ")
	must.StrContains(t, out, "STAT /dev/fake1 character special file 1:5 ")
	for _, want := range []string{"fake0-read-open", "fake0-write-refused", "fake1-read=4", "fake1-write-ok", "reserved fake0", "info-read-only", "env=fake0,fake1"} {
		must.StrContains(t, out, want)
	}

	// without the reservation the same node is refused by the device cgroup
	out = runWith(t, b, "", newTask(t, sh("mknod /tmp/f c 10 229 && (exec 3</tmp/f) 2>/dev/null || echo fuse-refused; echo END")), nil)
	must.StrContains(t, out, "fuse-refused")

	notDevice := reserve(newTask(t, sh("echo END")))
	notDevice.Devices[1].HostPath = info
	refuse(t, b, "", notDevice, nil, fmt.Sprintf(`device reservation 1: %q (resolved to %q) is not a device node`, info, info))
	relative := reserve(newTask(t, sh("echo END")))
	relative.Devices[0].TaskPath = "dev/fake0"
	refuse(t, b, "", relative, nil, `device reservation 0: host path "`+fuse+`" and task path "dev/fake0" must be absolute paths`)
}

// cdiPlugin is the plugin config of a CDI spec dir and allow list.
func cdiPlugin(dir string, allowed ...string) string {
	return fmt.Sprintf("cdi {\n spec_dirs = [%q]\n allowed_devices = %s\n}", dir, hclList(allowed))
}

func testCDIDevices(t *testing.T, b *bed, baseline []string, fuse string) {
	specs := t.TempDir()
	writeCDISpec(t, specs, "fake.json", "ndc.test/fake", cdiDevice{Name: "one", Node: "/dev/cdi-one", HostPath: fuse, Env: "CDI_ONE=yes"})
	script := listDev + statDev("/dev/cdi-one") + "(exec 3</dev/cdi-one) && echo cdi-one-open; echo one=$CDI_ONE spec=$CDI_SPEC; echo END"
	raw := sh(script)
	raw.CDIDevices = []string{"ndc.test/fake=one"}
	out := runWith(t, b, cdiPlugin(specs, "ndc.test/fake=*"), newTask(t, raw), nil)
	newInDev(t, baseline, out, "cdi-one")
	must.StrContains(t, out, "STAT /dev/cdi-one character special file a:e5 ")
	must.StrContains(t, out, "cdi-one-open")
	must.StrContains(t, out, "one=yes spec=ndc.test/fake")

	refuse(t, b, "", newTask(t, raw), nil, `cdi_devices[0]: CDI device "ndc.test/fake=one" is refused: it is not in the plugin's cdi.allowed_devices []`)
	unknown := sh(script)
	unknown.CDIDevices = []string{"ndc.test/fake=one", "ndc.test/fake=two"}
	refuse(t, b, cdiPlugin(specs, "ndc.test/fake=*"), newTask(t, unknown), nil,
		`cdi_devices[1]: CDI device "ndc.test/fake=two" is not defined by any spec in ["`+specs+`"]; known devices: ["ndc.test/fake=one"]`)

	// a spec whose host node is gone fails at create, and leaves nothing
	writeCDISpec(t, specs, "gone.json", "ndc.test/gone", cdiDevice{Name: "x", Node: "/dev/gone", HostPath: filepath.Join(specs, "absent"), Env: "GONE=1"})
	gone := sh(script)
	gone.CDIDevices = []string{"ndc.test/gone=x"}
	refuse(t, b, cdiPlugin(specs, "ndc.test/*"), newTask(t, gone), nil, `failed to stat CDI host device`)
}

func testNvidiaCDI(t *testing.T, b *bed, baseline []string, fuse string) {
	specs := t.TempDir()
	writeCDISpec(t, specs, "nvidia.yaml", "nvidia.com/gpu",
		cdiDevice{Name: "GPU-fake-0", Node: "/dev/nvidia0", HostPath: fuse, Env: "FAKE_GPU=GPU-fake-0"},
		cdiDevice{Name: "GPU-fake-1", Node: "/dev/nvidia1", HostPath: fuse, Env: "FAKE_GPU1=GPU-fake-1"})
	plugin := cdiPlugin(specs)
	script := listDev + statDev("/dev/nvidia0") + "(exec 3</dev/nvidia0) && echo gpu-open; echo gpu=$FAKE_GPU visible=$NVIDIA_VISIBLE_DEVICES; echo END"
	reserved := func(v string) func(*drivers.TaskConfig) {
		return func(task *drivers.TaskConfig) {
			task.DeviceEnv = map[string]string{nvidiaVisibleDevices: v}
			task.Env = map[string]string{nvidiaVisibleDevices: v}
		}
	}
	out := runWith(t, b, plugin, newTask(t, sh(script)), reserved("GPU-fake-0"))
	newInDev(t, baseline, out, "nvidia0")
	must.StrContains(t, out, "STAT /dev/nvidia0 character special file a:e5 ")
	must.StrContains(t, out, "gpu-open")
	must.StrContains(t, out, "gpu=GPU-fake-0 visible=GPU-fake-0")

	// the job's own env cannot claim a GPU: only Nomad's reservation counts
	out = runWith(t, b, plugin, newTask(t, sh(listDev+"echo END")), func(task *drivers.TaskConfig) {
		task.Env = map[string]string{nvidiaVisibleDevices: "GPU-fake-0"}
	})
	newInDev(t, baseline, out)

	refuse(t, b, plugin, newTask(t, sh(script)), reserved("GPU-fake-0,GPU-fake-9"),
		`NVIDIA_VISIBLE_DEVICES=GPU-fake-0,GPU-fake-9: GPU reserved by Nomad's device plugin: CDI device "nvidia.com/gpu=GPU-fake-9" is not defined by any spec in ["`+specs+`"]; known devices: ["nvidia.com/gpu=GPU-fake-0" "nvidia.com/gpu=GPU-fake-1"]`)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fp := firstFingerprint(ctx, t, b.harness(t, plugin))
	gpus, _ := fp.Attributes["driver.containerd.cdi.nvidia.com/gpu"].GetString()
	must.Eq(t, "GPU-fake-0,GPU-fake-1", gpus)
}
