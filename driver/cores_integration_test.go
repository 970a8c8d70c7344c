//go:build integration

package driver

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestReservedCores runs tasks in cpuset cgroups kept as a Nomad 1.6 client
// keeps them on cgroup v1 (testbed.Cpusets): a task with reserved cores runs
// on exactly those, every other task on the shared cores only, following
// them as reservations come and go.
func TestReservedCores(t *testing.T) {
	b := newBed(t)
	testbed.LeakCheck(t, b.cd)
	t.Run("exclusive", func(t *testing.T) { testCoresExclusive(t, b) })
	t.Run("recovered task", func(t *testing.T) { testCoresRecovered(t, b) })
	t.Run("no cpuset cgroup", func(t *testing.T) { testCoresNoCgroup(t, b) })
	t.Run("bad cpuset cgroup", func(t *testing.T) { testCoresBadCgroup(t, b) })
}

// twoCores are the node's cores and the last of them, to reserve; the
// test needs at least two.
func twoCores(t *testing.T, cs *testbed.Cpusets) (all []int, last int) {
	t.Helper()
	all = cs.Cores()
	if len(all) < 2 {
		t.Fatalf("reserved cores need a node with at least two cores, this one has %v", all)
	}
	return all, all[len(all)-1]
}

// sharedTask is a task without reserved cores that keeps a child process,
// in the shared cpuset.
func sharedTask(t *testing.T, cs *testbed.Cpusets) *drivers.TaskConfig {
	t.Helper()
	task := newTask(t, sh("sleep 300 & wait"))
	path, err := cs.Add(task.AllocID, task.Name)
	must.NoError(t, err)
	task.Resources.LinuxResources.CpusetCgroupPath = path
	return task
}

// pinnedTask is a task that reserved core, as Nomad hands it to a driver.
func pinnedTask(t *testing.T, cs *testbed.Cpusets, core int) *drivers.TaskConfig {
	t.Helper()
	task := newTask(t, sh("sleep 300 & wait"))
	task.Name = "pinned"
	task.Resources.NomadResources.Cpu.ReservedCores = []uint16{uint16(core)}
	task.Resources.LinuxResources.CpusetCpus = strconv.Itoa(core)
	if cs != nil {
		path, err := cs.Add(task.AllocID, task.Name, core)
		must.NoError(t, err)
		task.Resources.LinuxResources.CpusetCgroupPath = path
	}
	return task
}

// cpusOf checks that every process in the task's container, the exec'd
// ones reading it included, may run on exactly want (Cpus_allowed_list,
// read inside the container), and that the task has its init and a child.
func cpusOf(t *testing.T, h *testbed.Harness, taskID string, want []int) {
	t.Helper()
	res, err := h.ExecTask(taskID, []string{"sh", "-c", testbed.AllowedCPUsScript}, 10*time.Second)
	must.NoError(t, err)
	got, err := testbed.AllowedCPUs(string(res.Stdout), 3)
	must.NoError(t, err)
	must.Eq(t, want, got, must.Sprintf("cores of task %s", taskID))
}

// without is cores less core.
func without(cores []int, core int) []int {
	return slices.DeleteFunc(slices.Clone(cores), func(c int) bool { return c == core })
}

func testCoresExclusive(t *testing.T, b *bed) {
	cs := testbed.NewCpusets(t)
	all, core := twoCores(t, cs)
	rest := without(all, core)
	h := b.harness(t, "")
	shared := sharedTask(t, cs)
	start(t, h, shared)
	cpusOf(t, h, shared.ID, all)

	pinned := pinnedTask(t, cs, core)
	start(t, h, pinned)
	cpusOf(t, h, pinned.ID, []int{core})
	cpusOf(t, h, shared.ID, rest)
	later := sharedTask(t, cs)
	start(t, h, later)
	cpusOf(t, h, later.ID, rest)

	// the reserving task stops and Nomad gives its core back
	must.NoError(t, h.StopTask(pinned.ID, 5*time.Second, "SIGKILL"))
	wait(t, h, pinned.ID, 10*time.Second)
	must.NoError(t, h.DestroyTask(pinned.ID, true))
	must.NoError(t, cs.Remove(pinned.AllocID, pinned.Name))
	cpusOf(t, h, shared.ID, all)
	cpusOf(t, h, later.ID, all)
}

// testCoresRecovered: a task started by an earlier plugin keeps following
// the shared cores, exec'd processes included.
func testCoresRecovered(t *testing.T, b *bed) {
	cs := testbed.NewCpusets(t)
	all, core := twoCores(t, cs)
	h := b.harness(t, "")
	shared := sharedTask(t, cs)
	handle := start(t, h, shared)
	h.Kill()
	h2 := b.harness(t, "")
	must.NoError(t, h2.RecoverTask(handle))
	cpusOf(t, h2, shared.ID, all)

	pinned := pinnedTask(t, cs, core)
	start(t, h2, pinned)
	cpusOf(t, h2, shared.ID, without(all, core))
	must.NoError(t, h2.DestroyTask(pinned.ID, true))
	must.NoError(t, cs.Remove(pinned.AllocID, pinned.Name))
	cpusOf(t, h2, shared.ID, all)
}

// testCoresNoCgroup: a client without a cpuset manager hands no cgroup;
// the reserving task still runs on its core alone.
func testCoresNoCgroup(t *testing.T, b *bed) {
	cs := testbed.NewCpusets(t)
	_, core := twoCores(t, cs)
	h := b.harness(t, "")
	pinned := pinnedTask(t, nil, core)
	start(t, h, pinned)
	cpusOf(t, h, pinned.ID, []int{core})
}

// testCoresBadCgroup: a path that is no cpuset cgroup is refused, and a
// cgroup that takes no process (reserved, with no cores while nothing is
// reserved) fails the start; neither leaves anything behind.
func testCoresBadCgroup(t *testing.T, b *bed) {
	cs := testbed.NewCpusets(t)
	for _, path := range []string{t.TempDir(), "/sys/fs/cgroup/cpuset/ndc-no-such-cgroup", "/sys/fs/cgroup/cpuset/../cpuset", filepath.Join(cs.Parent, "reserved")} {
		t.Run(path, func(t *testing.T) {
			h := b.harness(t, "")
			task := newTask(t, sh("sleep 300"))
			task.Resources.LinuxResources.CpusetCgroupPath = path
			t.Cleanup(h.MkAllocDir(task, true))
			_, _, err := h.StartTask(task)
			must.Error(t, err)
			must.StrContains(t, err.Error(), fmt.Sprintf("cpuset cgroup %q", path))
			b.nothingLeft(t, task)
		})
	}
}
