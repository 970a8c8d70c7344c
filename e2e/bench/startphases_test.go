//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
)

// phaseLog keeps the phases of the driver's starts from its JSON log
// lines, while it is a sink of the driver's logger.
type phaseLog struct {
	mu     sync.Mutex
	starts []map[string]float64
}

func (l *phaseLog) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	sc.Buffer(nil, len(p)+1)
	l.mu.Lock()
	defer l.mu.Unlock()
	for sc.Scan() {
		if phases, ok := ParsePhaseLine(sc.Bytes()); ok {
			l.starts = append(l.starts, phases)
		}
	}
	return len(p), nil
}

// take returns the starts seen so far and forgets them.
func (l *phaseLog) take() []map[string]float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.starts
	l.starts = nil
	return out
}

// startPhases breaks n driver starts of each kind down by phase, from the
// driver's debug lines, which a sink at debug level reads whatever the
// driver's log level: on the host network, on the bridge with two port
// maps, and the userns figure's pair (userns_mode "auto" and "host"), all
// interleaved.
func (b *bed) startPhases(n int) []PhaseSet {
	b.t.Helper()
	l := &phaseLog{}
	sink := hclog.NewSinkAdapter(&hclog.LoggerOptions{Level: hclog.Debug, Output: l, JSONFormat: true})
	b.logger.RegisterSink(sink)
	defer b.logger.DeregisterSink(sink)
	kinds := []struct {
		name string
		fig  *startFigure
	}{
		{"host", b.hostStarts(nil)},
		{"bridge", b.bridgeStarts(nil)},
		{"userns auto", &startFigure{b: b, config: userNSSleeper("auto")}},
		{"userns host", &startFigure{b: b, config: userNSSleeper("host")}},
	}
	starts := make([][]map[string]float64, len(kinds))
	fns := make([]func() float64, len(kinds))
	for i, k := range kinds {
		fns[i] = func() float64 {
			l.take()
			took := k.fig.driverRun()
			got := l.take()
			must.Len(b.t, 1, got, must.Sprint("one phases line per start"))
			starts[i] = append(starts[i], got[0])
			return took
		}
	}
	rotate(n, 1, fns...)
	sets := make([]PhaseSet, len(kinds))
	for i, k := range kinds {
		sets[i] = SummarizePhases(k.name, starts[i][len(starts[i])-n:])
	}
	return sets
}
