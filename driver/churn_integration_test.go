//go:build integration

package driver

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// defaultSoakCycles is the churn of `make test`; `make soak` sets
// SOAK_CYCLES=200.
const defaultSoakCycles = 30

// Bands the process must return to after the churn.
const (
	goroutineBand = 10
	heapBand      = 16 << 20
	rssBand       = 64 << 20
)

func soakCycles(t *testing.T) int {
	v := os.Getenv("SOAK_CYCLES")
	if v == "" {
		return defaultSoakCycles
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("SOAK_CYCLES=%q is not a positive number", v)
	}
	return n
}

// usage is what the process holds.
type usage struct {
	goroutines int
	heapInuse  uint64
	rss        int64
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, heap in use %.1f MiB, RSS %.1f MiB", u.goroutines, float64(u.heapInuse)/mib, float64(u.rss)/mib)
}

// measure collects garbage first, so that what is counted is what is held.
func measure(t *testing.T) usage {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{goroutines: runtime.NumGoroutine(), heapInuse: ms.HeapInuse, rss: vmRSS(t)}
}

func vmRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	must.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			must.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// churnAllocDir builds task's alloc dir under parent with logmon on its
// log fifos, as MkAllocDir does, but its cleanup leaves the harness
// connected, so that one harness serves every cycle.
func churnAllocDir(t *testing.T, parent string, task *drivers.TaskConfig) func() {
	t.Helper()
	dir, err := os.MkdirTemp(parent, "alloc-")
	must.NoError(t, err)
	td := testbed.PrepareTask(t, hclog.NewNullLogger(), dir, task, false) // the driver collects the logs
	return func() {
		td.Cleanup()
		_ = os.RemoveAll(dir)
	}
}

// fifosUnder lists the named pipes below dirs.
func fifosUnder(dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type()&fs.ModeNamedPipe != 0 {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// TestChurn starts and stops SOAK_CYCLES tasks (default 30; `make soak`
// runs 200) on the built-in bridge network with two port maps, through one
// harness, and checks that nothing is left: no container, task, snapshot,
// lease, shim, netns, veth, iptables rule or chain, IPAM reservation or
// fifo; and that the process's goroutines and memory return to their band.
func TestChurn(t *testing.T) {
	testbed.Require(t, true, "iptables", "ip")
	nb := newNetBed(t)
	h := nb.harness(t, nb.pluginHCL(""))
	parent := t.TempDir()
	cycles := soakCycles(t)
	leaksFound := 0
	checkNet := func(when string) {
		if leaks := testbed.NetLeaks(nb.scope); len(leaks) > 0 {
			leaksFound += len(leaks)
			t.Errorf("%s left:\n  %s", when, strings.Join(leaks, "\n  "))
		}
	}

	cycle := func(i int) {
		httpPort, dnsPort := freePort(t), freePort(t)
		task := echoTask(t, rawTaskConfig{NetworkMode: "bridge", Ports: []string{"http", "dns"}},
			structs.AllocatedPortMapping{Label: "http", Value: httpPort, To: 8080},
			structs.AllocatedPortMapping{Label: "dns", Value: dnsPort, To: 9000})
		task.Name = fmt.Sprintf("churn%d", i)
		cleanup := churnAllocDir(t, parent, task)
		defer cleanup()
		_, dnet, err := h.StartTask(task)
		must.NoError(t, err, must.Sprintf("cycle %d", i))
		must.Eq(t, map[string]int{"http": 8080, "dns": 9000}, dnet.PortMap)
		if i%10 == 0 {
			answers(t, "tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
		}
		stopAndDestroy(t, h, task.ID, i%2 == 0)
		if i%10 == 9 {
			checkNet(fmt.Sprintf("cycle %d", i))
		}
	}

	for i := 0; i < 3; i++ { // warm up: caches, pools, the bridge and shared chains
		cycle(-1 - i)
	}
	before := measure(t)
	began := time.Now()
	for i := 0; i < cycles; i++ {
		cycle(i)
	}
	took := time.Since(began)

	// shims and watchers end asynchronously
	var after usage
	testbed.Poll(15*time.Second, 200*time.Millisecond, func() bool {
		after = measure(t)
		return after.goroutines <= before.goroutines+goroutineBand
	})
	var left []string
	testbed.Poll(10*time.Second, 200*time.Millisecond, func() bool {
		left = testbed.Leaks(nb.cd.Context(), nb.cd)
		return len(left) == 0
	})
	leaksFound += len(left)
	must.SliceEmpty(t, left, must.Sprint("left in containerd"))
	checkNet("the churn")
	fifos := fifosUnder(nb.cd.State, nb.cd.Root, parent)
	leaksFound += len(fifos)
	must.SliceEmpty(t, fifos)
	entries, err := os.ReadDir(nb.netnsDir)
	must.NoError(t, err)
	leaksFound += len(entries)
	must.SliceEmpty(t, entries)

	t.Logf("churn: %d cycles in %s (%s a cycle), %d leaks found", cycles, took.Round(time.Second), (took / time.Duration(cycles)).Round(time.Millisecond), leaksFound)
	t.Logf("churn: before: %s", before)
	t.Logf("churn: after:  %s", after)
	must.LessEq(t, before.goroutines+goroutineBand, after.goroutines, must.Sprint("goroutines did not return to their band"))
	must.LessEq(t, before.heapInuse+heapBand, after.heapInuse, must.Sprint("heap did not return to its band"))
	must.LessEq(t, before.rss+rssBand, after.rss, must.Sprint("RSS did not return to its band"))
}

// stopAndDestroy ends a running task the two ways Nomad does: StopTask
// then DestroyTask, or a forced DestroyTask of the running task.
func stopAndDestroy(t *testing.T, h *testbed.Harness, taskID string, stopFirst bool) {
	t.Helper()
	if stopFirst {
		must.NoError(t, h.StopTask(taskID, 5*time.Second, "SIGKILL"))
		wait(t, h, taskID, 10*time.Second)
	}
	must.NoError(t, h.DestroyTask(taskID, true))
}
