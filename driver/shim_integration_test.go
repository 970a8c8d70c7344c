//go:build integration

package driver

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestShimPerAllocation checks that the tasks of one allocation share one
// runc shim process, and that a shim goes when its allocation's last task
// does.
func TestShimPerAllocation(t *testing.T) {
	b := newCheckedBed(t)
	h := b.harness(t, "")
	allocA, allocB := uuid.Generate(), uuid.Generate()
	tasks := map[string]string{} // test name -> task ID
	for name, cfg := range map[string]struct{ alloc, task string }{"a1": {allocA, "one"}, "a2": {allocA, "two"}, "b1": {allocB, "one"}} {
		task := newTask(t, rawTaskConfig{Command: "sleep", Args: []string{"600"}})
		task.AllocID, task.Name = cfg.alloc, cfg.task
		start(t, h, task)
		tasks[name] = task.ID
	}
	shim := func(name string) int { return shimOf(t, h, tasks[name]) }
	sa1, sa2, sb1 := shim("a1"), shim("a2"), shim("b1")
	must.Eq(t, sa1, sa2, must.Sprint("the tasks of one allocation have different shims"))
	must.NotEq(t, sa1, sb1, must.Sprint("two allocations share a shim"))
	must.Eq(t, sorted([]int{sa1, sb1}), sorted(b.cd.Shims()))

	// the allocation's shim serves its other task until that one goes too
	must.NoError(t, h.DestroyTask(tasks["a1"], true))
	must.Eq(t, sa1, shim("a2"))
	must.NoError(t, h.DestroyTask(tasks["a2"], true))
	eventually(t, "allocation A's shim to exit", func() bool { return !slices.Contains(b.cd.Shims(), sa1) })
	must.Eq(t, []int{sb1}, b.cd.Shims())
}

// shimOf is the parent of the task's process: the shim that runs it.
func shimOf(t *testing.T, h *testbed.Harness, taskID string) int {
	t.Helper()
	st, err := h.InspectTask(taskID)
	must.NoError(t, err)
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%s/stat", st.DriverAttributes["pid"]))
	must.NoError(t, err)
	// pid (comm) state ppid ...: comm may hold spaces, so cut after ')'
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ppid, err := strconv.Atoi(fields[1])
	must.NoError(t, err)
	return ppid
}

func sorted(xs []int) []int {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}
