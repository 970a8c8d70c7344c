package testbed

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/shoenig/test/must"
)

// TestTestLog: writes reach t.Log until the test ends, and never after (a
// goroutine that outlived the test would make t.Log panic).
func TestTestLog(t *testing.T) {
	var logged []string
	var after bytes.Buffer
	w := &testLog{log: func(args ...any) { logged = append(logged, fmt.Sprint(args...)) }, after: &after}
	_, err := w.Write([]byte("during the test\n"))
	must.NoError(t, err)
	w.end()
	n, err := w.Write([]byte("after the test\n"))
	must.NoError(t, err)
	must.Eq(t, 15, n)
	must.Eq(t, []string{"during the test"}, logged)
	must.Eq(t, "after the test\n", after.String())

	var inner testing.TB
	t.Run("cleanup ends it", func(t *testing.T) {
		inner = t
		w = TestLog(t).(*testLog)
	})
	must.True(t, w.ended, must.Sprintf("%s ended but its log did not", inner.Name()))
}
