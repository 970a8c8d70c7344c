package driver

import (
	"sync"
	"time"
)

// recoverTimeout is how long task recovery waits for a containerd that does
// not answer (one restarting under the tasks) before it fails. The wait is
// shared: it starts when the first recovery finds containerd unreachable and
// every recovery gives up at the same time, since Nomad recovers its tasks
// one after another while it starts.
const recoverTimeout = time.Minute

// recoveryWindow is the time that recoveries, together, wait for an
// unreachable containerd.
type recoveryWindow struct {
	mu    sync.Mutex
	start time.Time // when a recovery began to wait; zero while containerd answers
}

// wait opens the window, unless one is open, and says when it closes.
func (w *recoveryWindow) wait(now time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.start.IsZero() {
		w.start = now
	}
	return w.start.Add(recoverTimeout)
}

// reached closes the window: containerd answered.
func (w *recoveryWindow) reached() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.start = time.Time{}
}
