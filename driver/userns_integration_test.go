//go:build integration

package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
)

// A task with userns_mode = "auto" runs in a user namespace of its own:
// its root is an unprivileged host ID, host files it is given stay out of
// its reach, what it writes in Nomad's directories is owned on the host as
// without a user namespace, and no two tasks share a range, across a
// plugin kill too.
func TestUserNamespace(t *testing.T) {
	b := newCheckedBed(t)
	t.Run("files", func(t *testing.T) { testUserNSFiles(t, b) })
	t.Run("root filesystem", func(t *testing.T) { testUserNSRootFS(t, b) })
	t.Run("ranges across a plugin kill", func(t *testing.T) { testUserNSRecovery(t, b) })
}

// The root filesystem of an "auto" task is an overlay on the image's
// layers idmapped in the driver's staging directory (not the shim's): the
// image's files are its root's, it writes in its root, its container is
// recorded without a snapshot key, the snapshot held by the container's
// reference label through containerd's garbage collection, and removed
// with the container.
func testUserNSRootFS(t *testing.T, b *bed) {
	h := b.harness(t, "")
	raw := sh("stat -c 'bin=%u:%g' /bin; touch /written && echo root-written; echo ready; exec sleep 300")
	raw.UserNSMode = "auto"
	task := newTask(t, raw)
	start(t, h, task)
	eventually(t, "ready", func() bool { return strings.Contains(logs(t, task, "stdout"), "ready") })
	out := logs(t, task, "stdout")
	must.StrContains(t, out, "bin=0:0")
	must.StrContains(t, out, "root-written")

	mi, err := os.ReadFile(fmt.Sprintf("/proc/%s/mountinfo", taskPID(t, h, task.ID)))
	must.NoError(t, err)
	var root string
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == "/" {
			root = l
		}
	}
	must.StrContains(t, root, " - overlay ")
	must.StrContains(t, root, "lowerdir="+idmapStagingRoot+"/", must.Sprintf("the root is not on the driver's staged layers: %s", root))

	id := containerID(task.Name, task.AllocID)
	ctx := namespaces.WithNamespace(context.Background(), b.cd.Namespace)
	c, err := b.cd.Client.ContainerService().Get(ctx, id)
	must.NoError(t, err)
	must.Eq(t, "", c.SnapshotKey)
	must.Eq(t, id, c.Labels["containerd.io/gc.ref.snapshot.overlayfs"])
	// a garbage collection keeps the snapshot: the label holds it
	ls := b.cd.Client.LeasesService()
	l, err := ls.Create(ctx, leases.WithRandomID())
	must.NoError(t, err)
	must.NoError(t, ls.Delete(ctx, l, leases.SynchronousDelete))
	must.True(t, b.snapshotExists(t, id), must.Sprint("the garbage collection removed the running task's snapshot"))
	st, err := h.InspectTask(task.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, st.State)

	must.NoError(t, h.StopTask(task.ID, 0, "SIGKILL"))
	must.NoError(t, h.DestroyTask(task.ID, true))
	must.False(t, b.containerExists(t, id))
	must.False(t, b.snapshotExists(t, id), must.Sprint("the destroyed task's snapshot was left"))
}

func testUserNSFiles(t *testing.T, b *bed) {
	// dir is a host directory bound as it is, owned a host directory
	// bound with idmap; each holds a file of the host's root
	dir, owned := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, owned} {
		must.NoError(t, os.WriteFile(filepath.Join(d, "host-owned"), []byte("host data\n"), 0o644))
		must.NoError(t, os.Chmod(d, 0o755))
	}
	hostFile := filepath.Join(dir, "host-owned")

	raw := sh(`id -u; ` +
		`echo x >> /data/host-owned 2>/dev/null && echo host-file-written || echo host-file-refused; ` +
		`echo x >> /owned/host-owned && echo owned-file-written; ` +
		`touch /local/written /alloc/data/written /secrets/written /owned/written && echo dirs-written; ` +
		`touch /local/u1000 && chown 1000:1000 /local/u1000 && echo chowned; ` +
		`stat -c 'hosts=%u:%g' /etc/hosts; echo END`)
	raw.UserNSMode = "auto"
	raw.Volumes = []string{dir + ":/data", owned + ":/owned:idmap"}
	task := newTask(t, raw)
	out := runWith(t, b, volumesPlugin(dir, owned), task, nil)
	must.StrHasPrefix(t, "0\n", out)
	// a host file bound as it is keeps the host's ownership: the task's
	// root is nobody to it
	must.StrContains(t, out, "host-file-refused")
	data, err := os.ReadFile(hostFile)
	must.NoError(t, err)
	must.Eq(t, "host data\n", string(data))
	// one bound with idmap is the task's root's
	must.StrContains(t, out, "owned-file-written")
	must.StrContains(t, out, "dirs-written")
	must.StrContains(t, out, "chowned")
	must.StrContains(t, out, "hosts=0:0")
	// the image's layers are mounted idmapped: the snapshot carries the
	// mapping, and no chowned copy of the image was made
	ctx := namespaces.WithNamespace(context.Background(), b.cd.Namespace)
	sn := b.cd.Client.SnapshotService("overlayfs")
	info, err := sn.Stat(ctx, containerID(task.Name, task.AllocID))
	must.NoError(t, err)
	must.Eq(t, fmt.Sprintf("0:%d:65536", defaultIDRangeStart), info.Labels["containerd.io/snapshot/uidmapping"])
	must.NoError(t, sn.Walk(ctx, func(_ context.Context, i snapshots.Info) error {
		must.StrNotContains(t, i.Name, "remap", must.Sprint("a chowned copy of the image"))
		return nil
	}))
	// what the task writes in Nomad's directories and the idmapped volume
	// is owned on the host as it would be without a user namespace: its
	// root's files by root, its uid 1000's by 1000
	td := task.TaskDir()
	for p, want := range map[string]uint32{
		filepath.Join(td.LocalDir, "written"):               0,
		filepath.Join(td.SharedAllocDir, "data", "written"): 0,
		filepath.Join(td.SecretsDir, "written"):             0,
		filepath.Join(owned, "written"):                     0,
		filepath.Join(td.LocalDir, "u1000"):                 1000,
	} {
		st, err := os.Stat(p)
		must.NoError(t, err)
		must.Eq(t, want, st.Sys().(*syscall.Stat_t).Uid, must.Sprintf("owner of %s", p))
		must.Eq(t, want, st.Sys().(*syscall.Stat_t).Gid, must.Sprintf("group of %s", p))
	}
}

// hostIDs is the first (real) uid and gid of process pid, read from the
// host's /proc.
func hostIDs(t *testing.T, pid string) (uid, gid string) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%s/status", pid))
	must.NoError(t, err)
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[0] == "Uid:" {
			uid = f[1]
		}
		if len(f) > 1 && f[0] == "Gid:" {
			gid = f[1]
		}
	}
	return uid, gid
}

func testUserNSRecovery(t *testing.T, b *bed) {
	h := b.harness(t, `userns { default = "auto" }`)
	first := newTask(t, sh("echo ready; exec sleep 300")) // the plugin's default
	handle := start(t, h, first)
	eventually(t, "ready", func() bool { return strings.Contains(logs(t, first, "stdout"), "ready") })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	supported, _ := firstFingerprint(ctx, t, h).Attributes["driver.containerd.userns"].GetBool()
	must.True(t, supported, must.Sprint("the fingerprint says the node cannot run userns_mode = \"auto\""))
	pid := taskPID(t, h, first.ID)
	uid, gid := hostIDs(t, pid)
	must.Eq(t, fmt.Sprint(defaultIDRangeStart), uid)
	must.Eq(t, fmt.Sprint(defaultIDRangeStart), gid)

	h.Kill()
	h2 := b.harness(t, `userns { default = "auto" }`)
	must.NoError(t, h2.RecoverTask(handle))
	host := sh("echo ready; exec sleep 300")
	host.UserNSMode = "host"
	hostTask := newTask(t, host)
	start(t, h2, hostTask)
	second := newTask(t, sh("echo ready; exec sleep 300"))
	start(t, h2, second)
	eventually(t, "ready", func() bool { return strings.Contains(logs(t, second, "stdout"), "ready") })
	uid2, _ := hostIDs(t, taskPID(t, h2, second.ID))
	must.Eq(t, fmt.Sprint(defaultIDRangeStart+65536), uid2, must.Sprint("the recovered task's range was handed out again"))
	eventually(t, "ready", func() bool { return strings.Contains(logs(t, hostTask, "stdout"), "ready") })
	hostUID, _ := hostIDs(t, taskPID(t, h2, hostTask.ID))
	must.Eq(t, "0", hostUID)

	// a destroyed task's range is free again, for the next start but one
	// (ranges are handed out next fit)
	must.NoError(t, h2.StopTask(first.ID, 0, "SIGKILL"))
	must.NoError(t, h2.DestroyTask(first.ID, true))
	must.False(t, b.snapshotExists(t, containerID(first.Name, first.AllocID)), must.Sprint("the recovered task's snapshot was left"))
	d := h2.Impl().(*Driver)
	st, err := d.current()
	must.NoError(t, err)
	live := st.ids.Live()
	must.SliceLen(t, 1, live)
	must.Eq(t, containerID(second.Name, second.AllocID), live[0].Owner)
}

// A task in a user namespace of its own serves on port 80 of the driver's
// bridge network, answering through its mapped host port.
func TestUserNamespaceBridgePorts(t *testing.T) {
	nb := newNetBed(t)
	h := nb.harness(t, nb.pluginHCL(""))
	port := freePort(t)
	task := newTask(t, rawTaskConfig{Image: echoImage, NetworkMode: "bridge", Ports: []string{"http"},
		UserNSMode: "auto", Entrypoint: []string{"/bin/ndc-echo"}, Args: []string{"-tcp", ":80"}})
	ports := structs.AllocatedPorts{{Label: "http", Value: port, To: 80}}
	task.Resources.Ports = &ports
	startNet(t, h, task)
	answers(t, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	uid, _ := hostIDs(t, taskPID(t, h, task.ID))
	must.Eq(t, fmt.Sprint(defaultIDRangeStart), uid)
}
