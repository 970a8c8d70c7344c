//go:build e2e

package e2e

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// testCores runs cores.nomad.hcl: the task that reserved a core runs on it
// alone, the task without cores on the node's other cores, and gets the
// core back when the reservation ends. Nomad's client keeps the cpusets
// (its own cgroup_parent, see setup); every process of a task is read from
// inside its container, through `nomad alloc exec`.
func testCores(t *testing.T, e *env) {
	e.run(t, "cores.nomad.hcl")
	shared := e.groupAlloc(t, "cores", "shared")
	pinned := e.groupAlloc(t, "cores", "pinned")
	// the api package leaves the reserved cores out of its types
	var raw struct {
		AllocatedResources struct {
			Tasks map[string]struct {
				Cpu struct{ ReservedCores []uint16 }
			}
		}
	}
	_, err := e.nomad.API().Raw().Query("/v1/allocation/"+pinned.ID, &raw, nil)
	must.NoError(t, err)
	reserved := raw.AllocatedResources.Tasks["pinned"].Cpu.ReservedCores
	must.SliceLen(t, 1, reserved, must.Sprint("cores reserved by the pinned task"))
	core := int(reserved[0])
	node, _, err := e.nomad.API().Nodes().Info(pinned.NodeID, nil)
	must.NoError(t, err)
	var all []int
	for _, c := range node.NodeResources.Cpu.ReservableCpuCores {
		all = append(all, int(c))
	}
	must.Greater(t, 1, len(all), must.Sprintf("the node's cores %v: reserved cores need two", all))
	rest := slices.DeleteFunc(slices.Clone(all), func(c int) bool { return c == core })

	must.Eq(t, []int{core}, e.allowedCPUs(t, pinned.ID, "pinned"))
	must.Eq(t, rest, e.allowedCPUs(t, shared.ID, "shared"))
	must.StrContains(t, e.cli(t, "alloc", "logs", pinned.ID, "pinned"), "Cpus_allowed_list:\t"+testbed.FormatCPUList([]int{core}))

	// the reservation ends: the job runs again without the pinned group
	e.cli(t, "job", "run", "-detach", "-var", "image="+e.image, "-var", "pinned=0",
		filepath.Join(testbed.RepoRoot(), "example-jobs", "cores.nomad.hcl"))
	untilWithin(t, time.Minute, "the pinned allocation stopped", func() bool {
		a, _, err := e.nomad.API().Allocations().Info(pinned.ID, nil)
		return err == nil && a.ClientTerminalStatus()
	})
	// while Nomad rewrites the cpusets, an exec'd process may still read
	// the cores it started on: only the same new list everywhere counts
	untilWithin(t, time.Minute, "the shared task regains the core", func() bool {
		cpus, err := e.taskCPUs(t, shared.ID, "shared")
		return err == nil && slices.Equal(all, cpus)
	})
	a, _, err := e.nomad.API().Allocations().Info(shared.ID, nil)
	must.NoError(t, err)
	must.Eq(t, "running", a.ClientStatus, must.Sprint("the shared task kept running"))
}

// allowedCPUs is the cpu list every process in the task's container may run
// on (Cpus_allowed_list), the exec'd ones included; it fails the test when
// the processes differ.
func (e *env) allowedCPUs(t *testing.T, allocID, task string) []int {
	t.Helper()
	cpus, err := e.taskCPUs(t, allocID, task)
	must.NoError(t, err, must.Sprintf("task %s", task))
	return cpus
}

// taskCPUs is allowedCPUs with an error where the processes differ.
func (e *env) taskCPUs(t *testing.T, allocID, task string) ([]int, error) {
	t.Helper()
	out := e.cli(t, "alloc", "exec", "-task", task, allocID, "sh", "-c", testbed.AllowedCPUsScript)
	return testbed.AllowedCPUs(out, 2)
}

// groupAlloc waits until the job as registered now has a running
// allocation of group and returns it.
func (e *env) groupAlloc(t *testing.T, jobID, group string) *api.Allocation {
	t.Helper()
	cl := e.nomad.API()
	job, _, err := cl.Jobs().Info(jobID, nil)
	must.NoError(t, err)
	var a *api.Allocation
	untilWithin(t, 2*time.Minute, "a running allocation of "+jobID+"/"+group, func() bool {
		stubs, _, err := cl.Jobs().Allocations(jobID, true, nil)
		must.NoError(t, err)
		for _, s := range stubs {
			if s.CreateIndex < *job.CreateIndex || s.TaskGroup != group {
				continue
			}
			must.NotEq(t, "failed", s.ClientStatus, must.Sprintf("allocation %s failed: %s", s.ID, e.cli(t, "alloc", "status", s.ID)))
			if s.ClientStatus == "running" {
				a, _, err = cl.Allocations().Info(s.ID, nil)
				must.NoError(t, err)
				return true
			}
		}
		return false
	})
	return a
}
