//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// Memory per idle task: peerTasks one-task allocations started and left
// idle for peerSettle before their processes are measured.
const (
	peerTasks  = 20
	peerSettle = 5 * time.Second
)

// proc is one process the memory figure looks at.
type proc struct {
	kind string // what it is: shim, logmon, docker_logger, executor, plugin, agent, dockerd, containerd
	pss  int64  // KiB
}

// persistent kinds run before any task: their growth, not their size,
// is what tasks add.
var persistent = map[string]bool{"plugin": true, "agent": true, "dockerd": true, "containerd": true}

// processes are the agent and what it started (plugins, logmons,
// executors, docker loggers), the shims of both containerds, dockerd and
// both containerds, by PID, without the tasks' own processes (sleep).
func (p *peers) processes() map[int]proc {
	out := map[int]proc{}
	add := func(kind string, pids ...int) {
		for _, pid := range pids {
			args := cmdline(pid)
			if len(args) == 0 || filepath.Base(args[0]) == "sleep" {
				continue
			}
			if kind == "" {
				kind = nomadKind(args)
			}
			kb, err := pssKiB(pid)
			if err == nil {
				out[pid] = proc{kind: kind, pss: kb}
			}
		}
	}
	for _, pid := range testbed.ProcsWithEnv(p.nomad.Marker()) {
		add("", pid)
	}
	add("shim", testbed.ShimPIDs(p.b.cd.Address)...)
	add("shim", testbed.ShimPIDs(p.docker.Containerd)...)
	dd, dcd := p.docker.PIDs()
	add("dockerd", dd)
	add("containerd", dcd, p.b.cd.PID)
	return out
}

// nomadKind names a process of the agent's from its command line.
func nomadKind(args []string) string {
	if filepath.Base(args[0]) == "containerd" {
		return "plugin"
	}
	if len(args) > 1 {
		switch args[1] {
		case "logmon", "docker_logger", "executor", "agent":
			return args[1]
		}
	}
	return "other: " + strings.Join(args, " ")
}

func cmdline(pid int) []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
}

// pssKiB is the proportional set size of a process: its private memory
// plus its share of what it shares with others.
func pssKiB(pid int) (int64, error) {
	return procKiB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}

// idleMemory starts peerTasks allocations of pr and measures, once they
// idle, the PSS of the processes they added and the growth of the plugin
// (per task, MiB); growth of the agent and the daemons goes into the
// breakdown only.
func (p *peers) idleMemory(pr peer) (perTask float64, breakdown map[string]float64) {
	before := p.processes()
	job := p.job(pr, peerTasks)
	allocs := p.run(job)
	time.Sleep(peerSettle) // idle: what starting made and freed settles
	after := p.processes()
	p.purge(job, allocs)

	breakdown = map[string]float64{}
	var counted int64
	for pid, a := range after {
		b, existed := before[pid]
		switch {
		case !existed:
			breakdown[a.kind] += float64(a.pss)
			counted += a.pss
		case persistent[a.kind]:
			breakdown[a.kind+" growth"] += float64(a.pss - b.pss)
			if a.kind == "plugin" {
				counted += a.pss - b.pss
			}
		}
	}
	for k, v := range breakdown {
		breakdown[k] = v / peerTasks / 1024
	}
	return float64(counted) / peerTasks / 1024, breakdown
}

// describe prints a breakdown: "shim 3.2, logmon 14.7, ...".
func describe(breakdown map[string]float64) string {
	keys := make([]string, 0, len(breakdown))
	for k := range breakdown {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.2f", k, breakdown[k])
	}
	return strings.Join(parts, ", ")
}

// memorySample measures pr rounds times.
func (p *peers) memorySample(pr peer, rounds int) (Summary, string) {
	var xs []float64
	var last map[string]float64
	for range rounds {
		x, bd := p.idleMemory(pr)
		xs = append(xs, x)
		last = bd
	}
	must.SliceNotEmpty(p.b.t, xs)
	return Summarize(xs), describe(last)
}

// memoryRows: memory per idle task at peerTasks tasks in as many
// allocations, this driver with Nomad's logmon and with its own collector,
// against raw_exec and the docker driver.
func memoryRows(logmon, own, raw, dock Summary, notes map[string]string) []Row {
	name := fmt.Sprintf("peers: memory per idle task, %d in %d allocs", peerTasks, peerTasks)
	return []Row{
		{Name: name + ", collector driver vs docker", Unit: "MiB", Driver: own, Baseline: &dock, BaselineName: "docker driver",
			Target: Target{TargetRatio, 0.3}, Note: "this driver (MiB per task): " + notes["own"] + "; docker driver: " + notes["docker"]},
		{Name: name + ", collector driver vs raw_exec", Unit: "MiB", Driver: own, Baseline: &raw, BaselineName: "raw_exec",
			Target: Target{TargetMedian, 8}, Note: "raw_exec: " + notes["raw"]},
		{Name: name + ", collector nomad vs docker", Unit: "MiB", Driver: logmon, Baseline: &dock, BaselineName: "docker driver",
			Note: "this driver with logmon: " + notes["logmon"]},
	}
}
