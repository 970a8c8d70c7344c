//go:build bench

package bench

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// startLatency runs pr in a job of one allocation and returns the time
// from the task's Received event (the client has the allocation) to its
// first instruction, in ms.
func (p *peers) startLatency(pr peer) float64 {
	job := p.job(pr, 1)
	allocs := p.run(job)
	a := p.withEvents(allocs[0])
	took := p.latency(a)
	p.notePhases(pr.name, a, took)
	p.purge(job, allocs)
	return took
}

// withEvents is a as the servers have it once its task's Started event
// has reached them (the client sends task events in batches).
func (p *peers) withEvents(a *api.Allocation) *api.Allocation {
	cl := p.api
	testbed.Eventually(p.b.t, 30*time.Second, "the Started event of allocation "+a.ID, func() bool {
		info, _, err := cl.Allocations().Info(a.ID, nil)
		if err != nil || info.TaskStates["t"] == nil {
			return false
		}
		for _, ev := range info.TaskStates["t"].Events {
			if ev.Type == api.TaskStarted {
				a = info
				return true
			}
		}
		return false
	})
	return a
}

// phaseNames are the task events whose times (after Received) the start
// figure breaks down, with the first instruction between them.
var phaseNames = []string{api.TaskSetup, api.TaskStarted}

// notePhases keeps when a's task reached each of phaseNames and its first
// instruction (took), in ms after Received.
func (p *peers) notePhases(name string, a *api.Allocation, took float64) {
	if p.phases == nil {
		p.phases = map[string]map[string][]float64{}
	}
	if p.phases[name] == nil {
		p.phases[name] = map[string][]float64{}
	}
	var received int64
	for _, ev := range a.TaskStates["t"].Events {
		switch {
		case ev.Type == api.TaskReceived:
			received = ev.Time
		case received > 0 && slices.Contains(phaseNames, ev.Type):
			p.phases[name][ev.Type] = append(p.phases[name][ev.Type], float64(ev.Time-received)/1e6)
		}
	}
	p.phases[name]["first instruction"] = append(p.phases[name]["first instruction"], took)
}

// phaseFinding says, per peer, the median time after Received of each
// phase: what Nomad does before it calls the driver (Task Setup: task
// dir, logmon), the driver's start up to the task's first instruction,
// and Nomad's Started event once StartTask returned.
func (p *peers) phaseFinding(order []string) string {
	var parts []string
	for _, name := range order {
		ph := p.phases[name]
		var in []string
		for _, k := range append(append([]string{}, phaseNames[:1]...), "first instruction", phaseNames[1]) {
			if xs := ph[k]; len(xs) > 0 {
				in = append(in, fmt.Sprintf("%s %.0f", k, Summarize(xs).Median))
			}
		}
		parts = append(parts, name+": "+strings.Join(in, ", "))
	}
	return "peer start phases, median ms after Received: " + strings.Join(parts, "; ")
}

// latency is Received -> the task's first instruction, in ms.
func (p *peers) latency(a *api.Allocation) float64 {
	t := p.b.t
	st := a.TaskStates["t"]
	must.NotNil(t, st, must.Sprintf("allocation %s has no state of task t", a.ID))
	var received int64
	for _, ev := range st.Events {
		if ev.Type == api.TaskReceived {
			received = ev.Time
			break
		}
	}
	must.Positive(t, received, must.Sprintf("allocation %s: no Received event in %+v", a.ID, st.Events))
	st2, err := os.Stat(p.startedFile(a.ID))
	must.NoError(t, err)
	return float64(st2.ModTime().UnixNano()-received) / 1e6
}

// figureStarts: Received -> first instruction of a one-task allocation,
// this driver (with the given log collector) and Nomad's docker driver on
// the host network and on their bridges (the plugin's built-in bridge,
// docker's default network), with raw_exec (no network of its own) as the
// floor, and with crun this driver on the host network; all interleaved,
// every order in turn. The targets are held against the driver's
// own collector, the configuration that aims at them.
func (p *peers) figureStarts(runs int, collector string, crun bool) ([]Row, string) {
	p.phases = nil
	contenders := []peer{rawExecPeer(), containerdPeer("host"), dockerPeer("host"), containerdPeer("bridge"), dockerPeer("bridge")}
	if crun {
		contenders = append(contenders, p.crunPeer())
	}
	fns := make([]func() float64, len(contenders))
	names := make([]string, len(contenders))
	for i, c := range contenders {
		fns[i] = func() float64 { return p.startLatency(c) }
		names[i] = c.name
	}
	s := rotate(runs, 1, fns...)
	raw, cHost, dHost, cBridge, dBridge := Summarize(s[0]), Summarize(s[1]), Summarize(s[2]), Summarize(s[3]), Summarize(s[4])
	targets := collector == "driver"
	floor := func(extra float64) (Target, string) {
		if !targets {
			return Target{}, ""
		}
		return Target{TargetMedian, raw.Median + extra}, fmt.Sprintf("target: raw_exec's median %.0f ms + %.0f ms", raw.Median, extra)
	}
	ratio := Target{}
	if targets {
		ratio = Target{TargetRatio, 0.8}
	}
	prefix := "peers: start, collector " + collector + ", "
	hostFloor, hostNote := floor(25)
	bridgeFloor, bridgeNote := floor(50)
	rows := []Row{
		{Name: prefix + "host, vs raw_exec", Unit: "ms", Driver: cHost, Baseline: &raw, BaselineName: "raw_exec",
			Target: hostFloor, Note: hostNote},
		{Name: prefix + "host, vs docker", Unit: "ms", Driver: cHost, Baseline: &dHost, BaselineName: "docker driver, host",
			Target: ratio},
		{Name: prefix + "bridge, vs raw_exec", Unit: "ms", Driver: cBridge, Baseline: &raw, BaselineName: "raw_exec (host)",
			Target: bridgeFloor, Note: bridgeNote},
		{Name: prefix + "bridge, vs docker", Unit: "ms", Driver: cBridge, Baseline: &dBridge, BaselineName: "docker driver, docker's bridge",
			Target: ratio},
	}
	if crun {
		rows = append(rows, crunRow(Summarize(s[5]), cHost))
	}
	return rows, "collector " + collector + ": " + p.phaseFinding(names)
}
