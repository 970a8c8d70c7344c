//go:build integration

package driver

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
	"github.com/nomad-containerd/nomad-driver-containerd/userns"
)

// uidMap is the host range that process pid's user namespace maps its
// IDs onto, read from the host's /proc.
func uidMap(t *testing.T, pid string) userns.Range {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%s/uid_map", pid))
	must.NoError(t, err)
	var inside, start, size uint32
	_, err = fmt.Sscan(string(data), &inside, &start, &size)
	must.NoError(t, err, must.Sprintf("uid_map of %s: %q", pid, data))
	must.Eq(t, 0, inside)
	must.Positive(t, start, must.Sprintf("process %s is in the host's user namespace", pid))
	return userns.Range{Start: start, Size: size}
}

// disjoint fails when two of the ranges, by task, overlap.
func disjoint(t *testing.T, ranges map[string]userns.Range) {
	t.Helper()
	for a, ra := range ranges {
		for b, rb := range ranges {
			overlap := uint64(ra.Start) < uint64(rb.Start)+uint64(rb.Size) && uint64(rb.Start) < uint64(ra.Start)+uint64(ra.Size)
			must.False(t, a != b && overlap, must.Sprintf("tasks %s (%s) and %s (%s) share host IDs", a, ra, b, rb))
		}
	}
}

// A plugin that dies after creating a task's container and before Nomad
// has its handle leaves a container that holds a range nobody's task
// state records; the next plugin reads the range from the container's
// label and hands it to no new task.
func TestUserNamespaceRangeWithoutHandle(t *testing.T) {
	b := newCheckedBed(t)
	const plugin = `userns { default = "auto" }`
	h := b.harness(t, plugin)
	orphan := newTask(t, sh("echo ready; exec sleep 300"))
	start(t, h, orphan) // the handle is dropped: Nomad never gets it
	eventually(t, "ready", func() bool { return strings.Contains(logs(t, orphan, "stdout"), "ready") })
	orphanPID := taskPID(t, h, orphan.ID)
	held := uidMap(t, orphanPID)
	must.Eq(t, defaultIDRangeStart, held.Start)
	h.Kill()

	h2 := b.harness(t, plugin)
	next := newTask(t, sh("echo ready; exec sleep 300"))
	start(t, h2, next)
	eventually(t, "ready", func() bool { return strings.Contains(logs(t, next, "stdout"), "ready") })
	got := uidMap(t, taskPID(t, h2, next.ID))
	disjoint(t, map[string]userns.Range{orphan.ID: held, next.ID: got})
	must.True(t, processAlive(t, orphanPID))
}

// A hundred tasks whose starts are released at once (twenty allocations
// of five) get ranges of their own, disjoint on the host; after a plugin
// kill and recovery they keep them, new starts take other ranges, and
// destroying the tasks frees every range.
func TestUserNamespaceConcurrentStarts(t *testing.T) {
	const first, more = 100, 10
	b := newCheckedBed(t)
	const plugin = `userns { default = "auto" }`
	h := b.harness(t, plugin)
	began := time.Now()
	handles := startMany(t, h, first)
	t.Logf("%d tasks started at once in %s", first, time.Since(began))
	ranges := map[string]userns.Range{}
	for id := range handles {
		ranges[id] = uidMap(t, taskPID(t, h, id))
	}
	must.MapLen(t, first, ranges)
	disjoint(t, ranges)

	h.Kill()
	d2 := New(hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Info, Output: testbed.TestLog(t)}))
	h2 := testbed.NewHarness(t, d2)
	b.setConfig(t, h2, plugin)
	t.Cleanup(d2.Shutdown)
	for id, handle := range handles {
		must.NoError(t, h2.RecoverTask(handle))
		must.Eq(t, ranges[id], uidMap(t, taskPID(t, h2, id)), must.Sprint("a recovered task's range changed"))
	}
	began = time.Now()
	for id, handle := range startMany(t, h2, more) {
		handles[id] = handle
		ranges[id] = uidMap(t, taskPID(t, h2, id))
	}
	t.Logf("%d more tasks started after the recovery in %s", more, time.Since(began))
	must.MapLen(t, first+more, ranges)
	disjoint(t, ranges)

	st, err := d2.current()
	must.NoError(t, err)
	must.SliceLen(t, first+more, st.ids.Live())
	for id := range handles {
		must.NoError(t, h2.StopTask(id, time.Second, "SIGKILL"))
		must.NoError(t, h2.DestroyTask(id, true))
	}
	must.SliceEmpty(t, st.ids.Live(), must.Sprint("ranges held after every task was destroyed"))
	// twenty shims exit one after another: on a loaded machine that takes
	// longer than the leak check's own wait
	waitFor(t, time.Minute, "every container, snapshot and shim gone", func() bool {
		return len(testbed.Leaks(context.Background(), b.cd)) == 0
	})
}

// startMany starts n sleeping tasks under h, all released at once, five to an
// allocation (whose tasks share a shim), and returns their handles by task
// ID, once all of them run.
func startMany(t *testing.T, h *testbed.Harness, n int) map[string]*drivers.TaskHandle {
	t.Helper()
	tasks := make([]*drivers.TaskConfig, n)
	impl := h.Impl()
	for i := range tasks {
		tasks[i] = newTask(t, rawTaskConfig{Command: "sleep", Args: []string{"300"}})
		if i%5 > 0 {
			tasks[i].AllocID = tasks[i-1].AllocID
		}
		tasks[i].Name = fmt.Sprintf("web%d", i%5)
		t.Cleanup(h.MkAllocDir(tasks[i], false))
		id := tasks[i].ID
		t.Cleanup(func() { _ = impl.DestroyTask(id, true) })
	}
	var (
		mu      sync.Mutex
		done    sync.WaitGroup
		handles = map[string]*drivers.TaskHandle{}
		errs    []error
	)
	release := make(chan struct{})
	for _, task := range tasks {
		done.Add(1)
		go func() {
			defer done.Done()
			<-release
			handle, _, err := h.StartTask(task)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			handles[task.ID] = handle
		}()
	}
	close(release)
	done.Wait()
	must.SliceEmpty(t, errs, must.Sprintf("%d of %d starts failed: %v", len(errs), n, errs))
	return handles
}
