package testbed

import (
	"testing"
	"time"

	"github.com/shoenig/test/wait"
)

// Poll calls cond, then again every gap, until it returns true or timeout has
// passed, and reports whether it returned true. It is the polling loop of the
// test bed and the tests; Eventually is its form that fails a test.
func Poll(timeout, gap time.Duration, cond func() bool) bool {
	return wait.InitialSuccess(wait.BoolFunc(cond), wait.Timeout(timeout), wait.Gap(gap)).Run() == nil
}

// Eventually polls cond for up to timeout and stops the test with "timed out
// waiting for <what>" if it never returned true. The gap between tries grows
// with timeout: 1/100 of it, from 20ms up to 250ms, so that short waits react
// fast and long ones (which often run CLI commands) do not spin.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, Gap(timeout), cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Gap is the pause between tries that Eventually uses for timeout.
func Gap(timeout time.Duration) time.Duration {
	return min(max(timeout/100, 20*time.Millisecond), 250*time.Millisecond)
}
