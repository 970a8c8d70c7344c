package testbed

import (
	"io"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestLog is a log writer for t: each write is one t.Log line while the
// test runs. A goroutine of the code under test may outlive the test (a
// wait that returns after the test's cleanups), and t.Log then panics, so
// what is written after the test ended goes to stderr instead.
func TestLog(t testing.TB) io.Writer {
	w := &testLog{log: t.Log, after: os.Stderr}
	t.Cleanup(w.end)
	return w
}

type testLog struct {
	log   func(args ...any) // t.Log
	after io.Writer         // where writes go once the test ended

	mu    sync.Mutex
	ended bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return w.after.Write(p)
	}
	w.log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// end is called when the test ends, after the cleanups registered later.
func (w *testLog) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
}
