package testbed

import (
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Second, time.Millisecond, func() bool { n++; return n == 3 }) {
		t.Fatalf("Poll gave up after %d tries", n)
	}
	if n != 3 {
		t.Fatalf("cond ran %d times, want 3", n)
	}
	began := time.Now()
	if Poll(50*time.Millisecond, 10*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll reported a condition that never held")
	}
	if took := time.Since(began); took < 50*time.Millisecond || took > 2*time.Second {
		t.Fatalf("Poll of 50ms took %s", took)
	}
}

func TestGap(t *testing.T) {
	for timeout, want := range map[time.Duration]time.Duration{
		time.Second:      20 * time.Millisecond,
		10 * time.Second: 100 * time.Millisecond,
		time.Minute:      250 * time.Millisecond,
	} {
		if got := Gap(timeout); got != want {
			t.Errorf("Gap(%s) = %s, want %s", timeout, got, want)
		}
	}
}
