package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// phaseMessage is the driver's debug line at the end of each start, with
// the time of each phase as "<name>_ms" (driver/phases.go).
const phaseMessage = "task start phases"

// phaseOrder is the order the driver's start runs its phases in; cni_add
// runs beside netns to network_wait, and total is the whole start.
var phaseOrder = []string{"plan", "ids", "leftover", "image", "netns", "logs", "container", "task",
	"pins", "network_wait", "cni_add", "start", "total"}

// PhaseSet is the driver's starts of one kind (host or bridge network)
// broken down by phase, from its "task start phases" lines.
type PhaseSet struct {
	Name   string  `json:"name"`
	Phases []Phase `json:"phases"`
}

// Phase is one phase's times over the starts, in ms.
type Phase struct {
	Name string `json:"name"`
	Summary
}

// ParsePhaseLine reads the phases of one JSON log line of the driver; ok
// is false for any other line.
func ParsePhaseLine(line []byte) (phases map[string]float64, ok bool) {
	var entry map[string]any
	if json.Unmarshal(line, &entry) != nil || entry["@message"] != phaseMessage {
		return nil, false
	}
	phases = map[string]float64{}
	for k, v := range entry {
		name, isPhase := strings.CutSuffix(k, "_ms")
		if ms, isNumber := v.(float64); isPhase && isNumber {
			phases[name] = ms
		}
	}
	return phases, true
}

// SummarizePhases reduces the phases of starts (one map per start) to a
// PhaseSet, in phaseOrder, phases it does not know after those, by name.
// A phase missing from some starts (cni_add on the host network) is
// summarized over those that have it.
func SummarizePhases(name string, starts []map[string]float64) PhaseSet {
	samples := map[string][]float64{}
	for _, s := range starts {
		for k, v := range s {
			samples[k] = append(samples[k], v)
		}
	}
	var names, other []string
	for _, n := range phaseOrder {
		if _, ok := samples[n]; ok {
			names = append(names, n)
		}
	}
	for n := range samples {
		if !slices.Contains(phaseOrder, n) {
			other = append(other, n)
		}
	}
	sort.Strings(other)
	set := PhaseSet{Name: name}
	for _, n := range append(names, other...) {
		set.Phases = append(set.Phases, Phase{Name: n, Summary: Summarize(samples[n])})
	}
	return set
}

// writeTable prints the set's medians on one line.
func (s PhaseSet) writeTable(w io.Writer) {
	parts := make([]string, len(s.Phases))
	n := 0
	for i, p := range s.Phases {
		parts[i] = fmt.Sprintf("%s %s", p.Name, num(p.Median))
		n = max(n, p.N)
	}
	fmt.Fprintf(w, "  start phases, %s (median ms of %d starts): %s\n", s.Name, n, strings.Join(parts, ", "))
}
