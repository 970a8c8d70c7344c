package driver

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
)

// A recovered pull_only task needs no containerd: it reports its exit 0,
// has no process to signal or exec in, and stopping and destroying it
// succeed with nothing to tear down.
func TestRecoverPullOnlyTask(t *testing.T) {
	d := New(hclog.NewNullLogger())
	t.Cleanup(d.cancel)
	d.st = &state{config: &Config{Namespace: "nomad"}, gc: image.NewGC(nil, "nomad", image.GCConfig{}, nil)}
	exited := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	h := handleWith(encodeState(t, TaskState{
		Version: taskStateVersion, ContainerID: "web-a1", Namespace: "nomad",
		ImageRef: "docker.io/library/busybox:1.36", ImageDigest: "sha256:9ae9", StartedAt: exited, PullOnly: true,
	}))
	h.Config.AllocID = "a1"
	id := h.Config.ID
	must.NoError(t, d.RecoverTask(h))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch, err := d.WaitTask(ctx, id)
	must.NoError(t, err)
	select {
	case res := <-ch:
		must.Eq(t, 0, res.ExitCode)
		must.Eq(t, 0, res.Signal)
	case <-ctx.Done():
		t.Fatal("a recovered pull_only task reported no exit")
	}
	st, err := d.InspectTask(id)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateExited, st.State)
	must.Eq(t, exited, st.CompletedAt)
	must.Eq(t, "sha256:9ae9", st.DriverAttributes["image_digest"])

	must.ErrorContains(t, d.SignalTask(id, "SIGHUP"), "a pull_only task has no container")
	_, err = d.ExecTask(id, []string{"true"}, time.Second)
	must.ErrorContains(t, err, "a pull_only task has no container")
	must.NoError(t, d.StopTask(id, time.Second, "SIGTERM"))
	must.NoError(t, d.DestroyTask(id, false))
	_, err = d.InspectTask(id)
	must.ErrorIs(t, err, drivers.ErrTaskNotFound)
}
