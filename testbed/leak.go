package testbed

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/core/snapshots"
)

// Leaks lists what is left in cd's namespace: containers, tasks, leases,
// snapshots that are not committed image layers, and running shims of cd.
func Leaks(ctx context.Context, cd *Containerd) []string {
	if cd.Client == nil {
		return []string{"containerd is stopped (StopDaemon without StartDaemon): nothing can be checked"}
	}
	ctx = withNS(ctx, cd.Namespace)
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }

	if ctrs, err := cd.Client.Containers(ctx); err != nil {
		add("list containers: %v", err)
	} else {
		for _, c := range ctrs {
			add("container %s", c.ID())
		}
	}
	if resp, err := cd.Client.TaskService().List(ctx, &tasksapi.ListTasksRequest{}); err != nil {
		add("list tasks: %v", err)
	} else {
		for _, t := range resp.Tasks {
			add("task %s (pid %d, %s)", t.ID, t.Pid, t.Status)
		}
	}
	if ls, err := cd.Client.LeasesService().List(ctx); err != nil {
		add("list leases: %v", err)
	} else {
		for _, l := range ls {
			add("lease %s %v", l.ID, l.Labels)
		}
	}
	for _, sn := range []string{"overlayfs", "native"} {
		err := cd.Client.SnapshotService(sn).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
			if info.Kind != snapshots.KindCommitted {
				add("%s snapshot %s (%s)", sn, info.Name, info.Kind)
			}
			return nil
		})
		if err != nil {
			add("walk %s snapshots: %v", sn, err)
		}
	}
	for _, pid := range cd.Shims() {
		add("shim pid %d", pid)
	}
	return out
}

// LeakCheck registers a cleanup that fails the test when, at its end, cd's
// namespace still holds containers, tasks, leases, snapshots other than
// committed image layers, or running shims. Call it right after
// StartContainerd, so that it runs after the test's own cleanups (and before
// the daemon is stopped). Shims exit asynchronously, so it waits up to 10s
// for things to settle.
func LeakCheck(t testing.TB, cd *Containerd) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var leaks []string
		Poll(10*time.Second, 100*time.Millisecond, func() bool {
			leaks = Leaks(ctx, cd)
			return len(leaks) == 0
		})
		if len(leaks) > 0 {
			t.Errorf("testbed: leaked in containerd namespace %q:\n  %s", cd.Namespace, strings.Join(leaks, "\n  "))
		}
	})
}
