//go:build integration

package driver

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// abandon ends the plugin behind h the way a crash does: its tasks keep
// running and nobody destroys them.
func abandon(h *testbed.Harness) {
	h.Impl().(*Driver).Shutdown()
}

// startAbandoned starts task under a plugin that then goes away, and
// returns the task's handle.
func startAbandoned(t *testing.T, h *testbed.Harness, task *drivers.TaskConfig) *drivers.TaskHandle {
	t.Helper()
	t.Cleanup(h.MkAllocDir(task, true))
	handle, _, err := h.StartTask(task)
	must.NoError(t, err)
	return handle
}

// TestDanglingContainers leaves containers behind a plugin that went away
// and checks what a new plugin's reconciler does with them: the orphan on a
// bridge network with two port maps goes with its snapshot and network,
// not before a grace has passed since the plugin started; the task the new
// plugin recovers, its own running task, a young orphan and a container
// without the driver's labels stay.
func TestDanglingContainers(t *testing.T) {
	testbed.Require(t, true, "iptables", "ip")
	nb := newNetBed(t)
	const grace = 3 * time.Second
	noGC := nb.pluginHCL("gc {\n container = false\n}")

	// a plugin starts two tasks, then dies
	old := nb.harness(t, noGC)
	orphan := echoTask(t, rawTaskConfig{NetworkMode: "bridge", Ports: []string{"http", "dns"}},
		structs.AllocatedPortMapping{Label: "http", Value: freePort(t), To: 8080},
		structs.AllocatedPortMapping{Label: "dns", Value: freePort(t), To: 9000})
	orphan.Name = "orphan"
	startAbandoned(t, old, orphan)
	recovered := newTask(t, onHost(sh("sleep 300")))
	recovered.Name = "recovered"
	recoveredHandle := startAbandoned(t, old, recovered)
	abandon(old)
	orphanID := containerID(orphan.Name, orphan.AllocID)
	must.SliceNotEmpty(t, testbed.NetLeaks(nb.scope), must.Sprint("the orphan's network is there to be removed"))

	// a container of someone else's in the namespace
	ctx := nb.cd.Context()
	img, err := nb.cd.Client.GetImage(ctx, testImage)
	must.NoError(t, err)
	otherID := "other-" + orphan.AllocID
	other, err := nb.cd.Client.NewContainer(ctx, otherID, client.WithImage(img),
		client.WithNewSnapshot(otherID, img), client.WithNewSpec(oci.WithImageConfig(img)),
		client.WithContainerLabels(map[string]string{"app": "other"}))
	must.NoError(t, err)
	t.Cleanup(func() { _ = other.Delete(nb.cd.Context(), client.WithSnapshotCleanup) })

	// the new plugin, once the old containers are older than the grace: its
	// own task, and the recovery of one of the old ones
	time.Sleep(grace)
	began := time.Now()
	h := nb.harness(t, nb.pluginHCL(fmt.Sprintf("gc {\n container_grace = %q\n}", grace)))
	own := newTask(t, onHost(sh("sleep 300")))
	own.Name = "own"
	start(t, h, own)
	time.Sleep(grace / 3) // Nomad recovers its tasks some time after SetConfig
	must.NoError(t, h.RecoverTask(recoveredHandle))
	t.Cleanup(func() { _ = h.Impl().DestroyTask(recovered.ID, true) })

	waitFor(t, 30*time.Second, "the orphan removed", func() bool { return !nb.containerExists(t, orphanID) })
	must.GreaterEq(t, grace, time.Since(began), must.Sprint("removed before a grace had passed since the plugin started"))
	must.False(t, nb.snapshotExists(t, orphanID))
	must.SliceEmpty(t, testbed.NetLeaks(nb.scope))
	entries, err := os.ReadDir(nb.netnsDir)
	must.NoError(t, err)
	must.SliceEmpty(t, entries)

	for _, task := range []*drivers.TaskConfig{own, recovered} {
		st, err := h.InspectTask(task.ID)
		must.NoError(t, err)
		must.Eq(t, drivers.TaskStateRunning, st.State, must.Sprintf("task %s", task.Name))
	}
	must.True(t, nb.containerExists(t, otherID))

	// an orphan younger than the grace stays, then goes
	another := nb.harness(t, noGC)
	young := newTask(t, onHost(sh("sleep 300")))
	young.Name = "young"
	born := time.Now()
	startAbandoned(t, another, young)
	abandon(another)
	youngID := containerID(young.Name, young.AllocID)
	time.Sleep(grace * 2 / 3) // at least one pass ran meanwhile
	if time.Since(born) < grace {
		must.True(t, nb.containerExists(t, youngID), must.Sprint("a container younger than the grace was removed"))
	}
	waitFor(t, 30*time.Second, "the young orphan removed in its time", func() bool { return !nb.containerExists(t, youngID) })
	must.GreaterEq(t, grace, time.Since(born))
	must.True(t, nb.containerExists(t, otherID))

	must.NoError(t, h.StopTask(own.ID, time.Second, "SIGKILL"))
	must.NoError(t, h.StopTask(recovered.ID, time.Second, "SIGKILL"))
}
