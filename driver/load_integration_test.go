//go:build integration

package driver

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
)

// TestOOMUnderLoad runs a memory hog and a task that gets SIGKILLed at the
// same time, in one allocation (one shim) with three CPU-busy tasks: the
// hog is reported OOM-killed, the SIGKILLed task and the busy ones are not,
// and each exit is reported once to each waiter.
func TestOOMUnderLoad(t *testing.T) {
	b := newCheckedBed(t)
	h := b.harness(t, "")
	allocID := uuid.Generate()
	member := func(name, script string, memoryMB int64) *drivers.TaskConfig {
		task := newTask(t, sh(script))
		task.Name, task.AllocID = name, allocID
		task.Resources.NomadResources.Memory.MemoryMB = memoryMB
		return task
	}

	var busy []*drivers.TaskConfig
	for _, name := range []string{"busy1", "busy2", "busy3"} {
		task := member(name, "while :; do :; done", 64)
		start(t, h, task)
		busy = append(busy, task)
	}
	victim := member("victim", "while :; do :; done", 64)
	start(t, h, victim)
	hog := member("hog", "sleep 0.5; dd if=/dev/zero of=/dev/null bs=256M count=1", 32)
	start(t, h, hog)

	var wg sync.WaitGroup
	results := map[string]*drivers.ExitResult{}
	var mu sync.Mutex
	for _, task := range []*drivers.TaskConfig{hog, victim} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := wait(t, h, task.ID, 2*time.Minute)
			mu.Lock()
			results[task.Name] = res
			mu.Unlock()
		}()
	}
	must.NoError(t, h.StopTask(victim.ID, time.Second, "SIGKILL"))
	wg.Wait()

	must.True(t, results["hog"].OOMKilled, must.Sprintf("hog: %+v", results["hog"]))
	must.False(t, results["victim"].OOMKilled, must.Sprintf("victim: %+v", results["victim"]))
	must.Eq(t, 9, results["victim"].Signal)
	// a second waiter gets the same, recorded exit
	must.True(t, wait(t, h, hog.ID, 10*time.Second).OOMKilled)

	for _, task := range busy {
		st, err := h.InspectTask(task.ID)
		must.NoError(t, err)
		must.Eq(t, drivers.TaskStateRunning, st.State, must.Sprintf("%s stopped under load", task.Name))
		must.NoError(t, h.StopTask(task.ID, time.Second, "SIGKILL"))
		res := wait(t, h, task.ID, 30*time.Second)
		must.False(t, res.OOMKilled, must.Sprintf("%s: %+v", task.Name, res))
		must.Eq(t, 9, res.Signal)
	}
}
