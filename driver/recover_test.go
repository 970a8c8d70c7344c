package driver

import (
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

// Recoveries that wait for containerd share one deadline: the first one to
// wait opens the window, later ones close at the same time, and an answer
// from containerd closes the window so that the next outage gets a full one.
func TestRecoveryWindow(t *testing.T) {
	var w recoveryWindow
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	must.Eq(t, t0.Add(recoverTimeout), w.wait(t0))
	must.Eq(t, t0.Add(recoverTimeout), w.wait(t0.Add(40*time.Second)))
	must.Eq(t, t0.Add(recoverTimeout), w.wait(t0.Add(5*time.Minute)))
	w.reached()
	later := t0.Add(10 * time.Minute)
	must.Eq(t, later.Add(recoverTimeout), w.wait(later))
}
