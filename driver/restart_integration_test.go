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

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestRestarts restarts containerd under running tasks, lets tasks exit
// while containerd or the plugin is away, and removes containers behind the
// driver's back, through Nomad's plugin harness. The plugin's own restart
// with a running task is in TestDriver ("recover", "recover exited") and on
// a real agent in e2e.
func TestRestarts(t *testing.T) {
	testbed.Require(t, true, "iptables", "ip")
	nb := newNetBed(t)
	t.Run("containerd restart", func(t *testing.T) { testContainerdRestart(t, nb) })
	t.Run("exit while containerd is down", func(t *testing.T) { testExitWhileContainerdDown(t, nb) })
	t.Run("recover while containerd is down", func(t *testing.T) { testRecoverWhileContainerdDown(t, nb) })
	t.Run("container deleted behind the driver", func(t *testing.T) { testContainerDeleted(t, nb) })
}

// cueTask serves TCP 8080 (ndc-echo) on the driver's bridge, with the
// Nomad port "http" mapped to it, and exits with code once the test writes
// the cue file into the allocation directory. Every run appends a line to
// /alloc/runs.
func cueTask(t *testing.T, code int) (*drivers.TaskConfig, int) {
	port := freePort(t)
	script := fmt.Sprintf("echo run >> /alloc/runs; /bin/ndc-echo -tcp :8080 & until [ -e /alloc/cue ]; do sleep 0.1; done; exit %d", code)
	task := newTask(t, rawTaskConfig{Image: echoImage, NetworkMode: "bridge", Ports: []string{"http"},
		Command: "sh", Args: []string{"-c", script}})
	ports := structs.AllocatedPorts{{Label: "http", Value: port, To: 8080}}
	task.Resources.Ports = &ports
	return task, port
}

// cue makes a cueTask exit.
func cue(t *testing.T, task *drivers.TaskConfig) {
	t.Helper()
	must.NoError(t, os.WriteFile(filepath.Join(task.TaskDir().SharedAllocDir, "cue"), nil, 0o644))
}

// runs is how many times the task's command started.
func runs(t *testing.T, task *drivers.TaskConfig) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(task.TaskDir().SharedAllocDir, "runs"))
	must.NoError(t, err)
	return strings.Count(string(b), "run\n")
}

// taskPID is the PID InspectTask reports for a running task.
func taskPID(t *testing.T, h *testbed.Harness, taskID string) string {
	t.Helper()
	st, err := h.InspectTask(taskID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, st.State)
	return st.DriverAttributes["pid"]
}

// gone waits until the process pid has exited.
func gone(t *testing.T, pid string) {
	t.Helper()
	eventually(t, "process "+pid+" to exit", func() bool { return !processAlive(t, pid) })
}

// waitCh opens a WaitTask that the test reads later.
func waitCh(t *testing.T, h *testbed.Harness, taskID string) <-chan *drivers.ExitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ch, err := h.WaitTask(ctx, taskID)
	must.NoError(t, err)
	return ch
}

// noExitYet fails the test when ch already delivered an exit.
func noExitYet(t *testing.T, ch <-chan *drivers.ExitResult, when string) {
	t.Helper()
	select {
	case res, ok := <-ch:
		t.Fatalf("an exit was reported %s: %+v (channel open: %v)", when, res, ok)
	default:
	}
}

// cueExit makes a cueTask exit and checks that its exit is reported once
// with code, that it ran once, and that its destroy leaves nothing.
func cueExit(t *testing.T, nb *netBed, h *testbed.Harness, task *drivers.TaskConfig, ch <-chan *drivers.ExitResult, code int) {
	t.Helper()
	cue(t, task)
	res := exitOnce(t, ch)
	must.Eq(t, code, res.ExitCode, must.Sprintf("exit %+v", res))
	must.NoError(t, res.Err)
	must.Eq(t, 1, runs(t, task))
	must.NoError(t, h.DestroyTask(task.ID, true))
	must.SliceEmpty(t, testbed.NetLeaks(nb.scope))
}

// lostExit checks the exit of a task that exited while containerd was down:
// containerd discards its status as it starts again.
func lostExit(t *testing.T, res *drivers.ExitResult) {
	t.Helper()
	must.Eq(t, 255, res.ExitCode, must.Sprintf("exit %+v", res))
	must.ErrorContains(t, res.Err, "exit status unknown: containerd no longer has task")
}

// exitOnce reads the one exit ch delivers, then checks that the channel
// closes without another.
func exitOnce(t *testing.T, ch <-chan *drivers.ExitResult) *drivers.ExitResult {
	t.Helper()
	var res *drivers.ExitResult
	select {
	case r, ok := <-ch:
		must.True(t, ok, must.Sprint("wait channel closed without an exit"))
		res = r
	case <-time.After(2 * time.Minute):
		t.Fatal("no exit reported")
	}
	select {
	case r, ok := <-ch:
		must.False(t, ok, must.Sprintf("a second exit was reported: %+v", r))
	case <-time.After(10 * time.Second):
		t.Fatal("wait channel not closed after the exit")
	}
	return res
}

func testContainerdRestart(t *testing.T, nb *netBed) {
	h := nb.harness(t, nb.pluginHCL(""))
	task, port := cueTask(t, 4)
	startNet(t, h, task)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	answers(t, "tcp", addr)
	pid := taskPID(t, h, task.ID)
	ch := waitCh(t, h, task.ID)

	must.NoError(t, nb.cd.Restart())
	noExitYet(t, ch, "when containerd restarted")
	must.Eq(t, pid, taskPID(t, h, task.ID))
	must.True(t, processAlive(t, pid))
	answers(t, "tcp", addr)

	// the driver waits again: the exit that follows is reported, once
	cueExit(t, nb, h, task, ch, 4)
}

func testExitWhileContainerdDown(t *testing.T, nb *netBed) {
	h := nb.harness(t, nb.pluginHCL(""))
	task, port := cueTask(t, 5)
	startNet(t, h, task)
	answers(t, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	pid := taskPID(t, h, task.ID)
	ch := waitCh(t, h, task.ID)

	nb.cd.StopDaemon(syscall.SIGTERM)
	cue(t, task)
	gone(t, pid)
	noExitYet(t, ch, "while containerd was down")
	must.NoError(t, nb.cd.StartDaemon())

	// containerd removes a task whose processes all exited while it was
	// down, exit status included, as it starts: the exit is reported once,
	// as a failure that says so
	res := exitOnce(t, ch)
	lostExit(t, res)
	must.Eq(t, 1, runs(t, task), must.Sprint("the task ran again"))
	st, err := h.InspectTask(task.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateExited, st.State)
	must.NoError(t, h.DestroyTask(task.ID, true))
	must.SliceEmpty(t, testbed.NetLeaks(nb.scope))
}

// The plugin restarts while containerd is down: recovery waits for
// containerd instead of failing (which would make Nomad destroy the task and
// run it again), reattaches to the same process and reports its real exit.
func testRecoverWhileContainerdDown(t *testing.T, nb *netBed) {
	h := nb.harness(t, nb.pluginHCL(""))
	task, port := cueTask(t, 6)
	handle, _ := startNet(t, h, task)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	answers(t, "tcp", addr)
	pid := taskPID(t, h, task.ID)

	h.Kill()
	nb.cd.StopDaemon(syscall.SIGKILL) // a crash: connections are refused at once
	h2 := nb.harness(t, nb.pluginHCL(""))
	recovered := make(chan error, 1)
	go func() { recovered <- h2.RecoverTask(handle) }()
	answers(t, "tcp", addr) // a round trip while recovery waits
	select {
	case err := <-recovered:
		t.Fatalf("recovery ended while containerd was down: %v", err)
	default:
	}
	must.NoError(t, nb.cd.StartDaemon())
	select {
	case err := <-recovered:
		must.NoError(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatal("recovery did not end after containerd came back")
	}
	must.Eq(t, pid, taskPID(t, h2, task.ID))

	cueExit(t, nb, h2, task, waitCh(t, h2, task.ID), 6)
}

// A container removed while the plugin was away: recovery fails and says
// so, and has removed what was left (snapshot, netns, veth, IP, iptables
// rules); Nomad's destroy that follows finds nothing to do. A container
// whose task alone was removed is recovered as exited, with an unknown
// status, and destroyed as usual.
func testContainerDeleted(t *testing.T, nb *netBed) {
	cases := []struct {
		name   string
		remove func(ctx context.Context, c client.Container)
		gone   bool
	}{
		{"task and container", func(ctx context.Context, c client.Container) {
			must.NoError(t, nb.cd.DeleteTask(ctx, c.ID()))
			must.NoError(t, c.Delete(ctx, client.WithSnapshotCleanup))
		}, true},
		{"container without its snapshot", func(ctx context.Context, c client.Container) {
			must.NoError(t, nb.cd.DeleteTask(ctx, c.ID()))
			must.NoError(t, c.Delete(ctx))
		}, true},
		{"task only", func(ctx context.Context, c client.Container) {
			must.NoError(t, nb.cd.DeleteTask(ctx, c.ID()))
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := nb.harness(t, nb.pluginHCL(""))
			task, port := cueTask(t, 0)
			handle, _ := startNet(t, h, task)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			answers(t, "tcp", addr)
			h.Kill()

			id := containerID(task.Name, task.AllocID)
			ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), nb.cd.Namespace), time.Minute)
			defer cancel()
			c, err := nb.cd.Client.LoadContainer(ctx, id)
			must.NoError(t, err)
			tc.remove(ctx, c)

			h2 := nb.harness(t, nb.pluginHCL(""))
			err = h2.RecoverTask(handle)
			if tc.gone {
				must.ErrorContains(t, err, "container "+id+" is gone")
				must.ErrorContains(t, h2.DestroyTask(task.ID, true), drivers.ErrTaskNotFound.Error())
			} else {
				must.NoError(t, err)
				lostExit(t, exitOnce(t, waitCh(t, h2, task.ID)))
				must.NoError(t, h2.DestroyTask(task.ID, false))
			}
			must.False(t, nb.containerExists(t, id))
			must.False(t, nb.snapshotExists(t, id))
			must.SliceEmpty(t, testbed.NetLeaks(nb.scope))
			_, err = talkTCP(addr, "ping")
			must.Error(t, err)
			must.Eq(t, 1, runs(t, task))
		})
	}
}
