package driver

import (
	"math"
	"time"
)

// phaseTimer times the named steps of one task start, for the debug line
// StartTask logs at its end: each phase as "<name>_ms" in milliseconds,
// then "total_ms".
type phaseTimer struct {
	began, last time.Time
	kv          []any
}

func newPhaseTimer() *phaseTimer {
	now := time.Now()
	return &phaseTimer{began: now, last: now}
}

// mark ends the phase name: it took the time since the previous mark (or
// since the timer began).
func (t *phaseTimer) mark(name string) {
	now := time.Now()
	t.add(name, now.Sub(t.last))
	t.last = now
}

// add records a phase timed elsewhere (one that ran beside the others).
func (t *phaseTimer) add(name string, d time.Duration) {
	t.kv = append(t.kv, name+"_ms", millis(d))
}

// keyvals are the phases in the order recorded and the total so far, as
// hclog key/value pairs.
func (t *phaseTimer) keyvals() []any {
	return append(t.kv[:len(t.kv):len(t.kv)], "total_ms", millis(time.Since(t.began)))
}

// millis is d in milliseconds, to the hundredth.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*100) / 100
}
