//go:build bench

package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	"golang.org/x/sys/unix"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestBench measures every figure, prints the table and writes
// .work/bench/results.json (and results.txt). BENCH_RUNS (default 40) sets
// the runs of the one-task figures, BENCH_ROUNDS (default 6) those of the
// concurrency figure (four times as many pulls, half as many memory and
// disk-pressure GC rounds, at least 3; a third as many rounds of peer
// memory, at least 1, and half the runs of peer starts, at least 5),
// BENCH_LAZY_RUNS (default 3) those of the lazy pulling figure; BENCH_ONLY
// (comma-separated: start, bridge, concurrent, exit, memory, pull, userns,
// gc, lazy, profile, peers) picks figures;
// BENCH_ENFORCE=1 fails the run when a target is missed.
func TestBench(t *testing.T) {
	load := loadAvg()
	b := newBed(t)
	d := b.newDirect()
	rep := &Report{Machine: machine(b)}
	rep.Machine.LoadBefore = load
	runs, rounds := envInt(t, "BENCH_RUNS", 40), envInt(t, "BENCH_ROUNDS", 6)
	only := map[string]bool{}
	for _, f := range strings.Split(os.Getenv("BENCH_ONLY"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			only[f] = true
		}
	}
	measure := func(name string, f func() []Row) {
		if len(only) > 0 && !only[name] {
			return
		}
		began := time.Now()
		rows := f()
		t.Logf("%s: measured in %s", name, time.Since(began).Round(time.Second))
		rep.Rows = append(rep.Rows, rows...)
	}
	measure("start", func() []Row { return []Row{b.figureStart(d, runs)} })
	measure("bridge", func() []Row { return []Row{b.figureBridgeStart(d, runs)} })
	measure("concurrent", func() []Row {
		wall, rate := b.figureConcurrent(d, 20, rounds)
		return []Row{wall, rate}
	})
	measure("exit", func() []Row { return []Row{b.figureExit(d, runs)} })
	measure("memory", func() []Row { return []Row{b.figureMemory(d, max(rounds/2, 3))} })
	measure("pull", func() []Row { return b.figureColdPull(4 * rounds) })
	measure("userns", func() []Row { return []Row{b.figureUserNSStart(runs), b.figureUserNSDisk(10)} })
	measure("gc", func() []Row {
		row, fig := figureDiskGC(t, max(rounds/2, 3))
		rep.DiskGC = fig
		return []Row{row}
	})
	measure("lazy", func() []Row { return figureLazy(t, envInt(t, "BENCH_LAZY_RUNS", 3)) })
	measure("profile", func() []Row {
		rep.Findings = append(rep.Findings, b.profileStarts(runs/2))
		rep.StartPhases = b.startPhases(runs / 2)
		return nil
	})
	measure("peers", func() []Row {
		if missing := peersMissing(); len(missing) > 0 {
			if testbed.InCI() {
				t.Fatalf("peers: missing %v (CI=true: a missing dependency is a failure)", missing)
			}
			rep.Findings = append(rep.Findings, fmt.Sprintf("peers: NOT MEASURED, missing %v", missing))
			return nil
		}
		p := b.newPeers()
		defer p.stop()
		rows, findings := p.figures(max(runs/2, 5), max(rounds/3, 1))
		rep.Findings = append(rep.Findings, findings...)
		return rows
	})
	rep.Machine.LoadAfter = loadAvg()

	must.NoError(t, rep.WriteTable(os.Stdout))
	path := filepath.Join(outDir(), "results.json")
	must.NoError(t, rep.Write(path))
	t.Logf("wrote %s", path)
	if os.Getenv("BENCH_ENFORCE") == "1" {
		if met, judged := rep.Met(); met < judged {
			t.Errorf("%d of %d targets missed (BENCH_ENFORCE=1)", judged-met, judged)
		}
	}
}

// profileStarts takes a CPU profile of the process (the driver and the
// harness) during n one-at-a-time starts on host networking.
func (b *bed) profileStarts(n int) string {
	b.t.Helper()
	path := filepath.Join(outDir(), "start.cpu.pprof")
	f, err := os.Create(path)
	must.NoError(b.t, err)
	defer f.Close()
	fig := &startFigure{b: b, config: func() map[string]any { return sleeper(busyboxRef) }}
	must.NoError(b.t, pprof.StartCPUProfile(f))
	for range n {
		fig.driverRun()
	}
	pprof.StopCPUProfile()
	return fmt.Sprintf("CPU profile of %d driver starts: %s (go tool pprof -top %s)", n, path, path)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	must.NoError(t, err, must.Sprintf("%s=%q", name, v))
	must.Positive(t, n, must.Sprintf("%s must be positive", name))
	return n
}

// machine describes where the figures come from.
func machine(b *bed) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now().UTC().Format(time.RFC3339)}
	m.Host, _ = os.Hostname()
	m.CPU = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.Atoi(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB")); err == nil {
		m.MemoryMiB = kb / 1024
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := b.cd.Client.Version(ctx); err == nil {
		m.Containerd = v.Version
	}
	if runc, err := testbed.RuncBin(); err == nil {
		if out, err := exec.CommandContext(ctx, runc, "--version").Output(); err == nil {
			m.Runc = strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "runc version ")
		}
	}
	return m
}

// procField is the value of the first "name: value" line of a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(data))[0], 64)
	return f
}
