//go:build bench

package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/shoenig/test/must"
)

// figureMemory: memory per running task, 8 tasks in 2 allocations: the
// shims' RSS plus the growth of the plugin's heap, against the same tasks
// started directly, one shim each (what `ctr run` gives).
func (b *bed) figureMemory(d *direct, rounds int) Row {
	const allocs, perAlloc = 2, 4
	f := &startFigure{b: b, d: d, config: func() map[string]any { return sleeper(busyboxRef) }}
	tm := f.template()
	batch := func() []*task {
		var tasks []*task
		for range allocs {
			alloc := uuid.Generate()
			for i := range perAlloc {
				tasks = append(tasks, b.newTask(alloc, fmt.Sprintf("t%d", i), sleeper(busyboxRef)))
			}
		}
		return tasks
	}
	var shimsDriver, shimsBase []int
	var heapKiB []float64 // the plugin's heap growth per task
	drv := func() float64 {
		tasks := batch()
		before := heapInUse()
		for _, tk := range tasks {
			_, _, err := b.startDriver(tk)
			must.NoError(b.t, err)
		}
		growth := max(heapInUse()-before, 0)
		heapKiB = append(heapKiB, float64(growth)/float64(len(tasks))/1024)
		shims := b.cd.Shims()
		shimsDriver = append(shimsDriver, len(shims))
		rss := rssSum(b, shims)
		for _, tk := range tasks {
			b.destroyDriver(tk)
		}
		return float64(rss+growth) / float64(len(tasks)) / (1 << 20)
	}
	base := func() float64 {
		ctx, cancel := context.WithTimeout(b.cd.Context(), callTimeout)
		defer cancel()
		tasks := batch()
		var started []*directTask
		for _, tk := range tasks {
			dt, _, err := d.start(ctx, tm, tk, startOpts{image: busyboxRef})
			must.NoError(b.t, err)
			started = append(started, dt)
		}
		shims := b.cd.Shims()
		shimsBase = append(shimsBase, len(shims))
		rss := rssSum(b, shims)
		for i, dt := range started {
			must.NoError(b.t, d.remove(ctx, dt))
			tasks[i].cleanup()
		}
		return float64(rss) / float64(len(tasks)) / (1 << 20)
	}
	ds, bs := interleave(rounds, 0, drv, base)
	bl := Summarize(bs)
	return Row{Name: "memory per task, 8 tasks in 2 allocs", Unit: "MiB", Driver: Summarize(ds), Baseline: &bl,
		BaselineName: "containerd client, a shim per task", Target: Target{TargetMedian, 6},
		Note: fmt.Sprintf("shims running: driver %v, baseline %v (per round); plugin heap growth per task: median %.0f KiB",
			shimsDriver, shimsBase, Summarize(heapKiB).Median)}
}

// heapInUse is the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// rssSum adds up the resident memory of pids.
func rssSum(b *bed, pids []int) int64 {
	b.t.Helper()
	var sum int64
	for _, pid := range pids {
		kb, err := vmRSS(pid)
		must.NoError(b.t, err)
		sum += kb << 10
	}
	return sum
}

// vmRSS is VmRSS of /proc/<pid>/status in KiB.
func vmRSS(pid int) (int64, error) { return procKiB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") }

// procKiB is the value of the first line of a /proc file that starts with
// field ("VmRSS:", "Pss:"), in KiB.
func procKiB(path, field string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s", strings.TrimSuffix(field, ":"), path)
}
