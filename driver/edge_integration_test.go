//go:build integration

package driver

import (
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestLeftoverContainer creates a task's container with the driver's own
// labels and ID, and its task, without starting it, the way a plugin that
// died between create and start leaves it: a new StartTask with the same
// task removes the leftover and runs, with one container.
func TestLeftoverContainer(t *testing.T) {
	b := newBed(t)
	testbed.LeakCheck(t, b.cd)
	h := b.harness(t, "")
	task := newTask(t, sh("echo ran"))
	id := containerID(task.Name, task.AllocID)

	ctx := b.cd.Context()
	img, err := b.cd.Client.GetImage(ctx, testImage)
	must.NoError(t, err)
	ctr, err := b.cd.Client.NewContainer(ctx, id, client.WithImage(img), client.WithSnapshotter("overlayfs"),
		client.WithNewSnapshot(id, img), client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "300")),
		client.WithContainerLabels(containerLabels(task, id, nil)))
	must.NoError(t, err)
	leftover, err := ctr.NewTask(ctx, cio.NullIO)
	must.NoError(t, err)
	t.Logf("leftover task created, pid %d, not started", leftover.Pid())

	start(t, h, task)
	must.Eq(t, 0, wait(t, h, task.ID, 30*time.Second).ExitCode)
	eventually(t, "the task's output", func() bool { return strings.Contains(logs(t, task, "stdout"), "ran") })
	cs, err := b.cd.Client.Containers(ctx, `labels."nomad.alloc_id"==`+task.AllocID)
	must.NoError(t, err)
	must.Len(t, 1, cs, must.Sprint("one container for the task"))
	must.NoError(t, h.DestroyTask(task.ID, true))
	b.nothingLeft(t, task)
}
