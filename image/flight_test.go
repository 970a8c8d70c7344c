package image

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

func TestFlightSharesOneCall(t *testing.T) {
	var g flightGroup[int]
	var calls atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context) (int, error) {
		calls.Add(1)
		<-release
		return 42, nil
	}

	const n = 10
	var wg sync.WaitGroup
	results := make([]int, n)
	errs := make([]error, n)
	var sharedCount atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, err, shared := g.do(context.Background(), "k", time.Minute, fn)
			results[i], errs[i] = v, err
			if shared {
				sharedCount.Add(1)
			}
		}(i)
	}
	waitFor(t, func() bool { return waiters(&g, "k") == n })
	close(release)
	wg.Wait()

	if c := calls.Load(); c != 1 {
		t.Fatalf("fn ran %d times, want 1", c)
	}
	if s := sharedCount.Load(); s != n-1 {
		t.Errorf("%d callers shared, want %d", s, n-1)
	}
	for i := range results {
		if errs[i] != nil || results[i] != 42 {
			t.Errorf("caller %d got %d, %v", i, results[i], errs[i])
		}
	}

	// The key is free again: a later call runs fn anew.
	release = make(chan struct{})
	close(release)
	if _, _, shared := g.do(context.Background(), "k", time.Minute, fn); shared || calls.Load() != 2 {
		t.Fatalf("second round: shared=%v calls=%d, want a new call", shared, calls.Load())
	}
}

func TestFlightCallerCancelDoesNotCancelOthers(t *testing.T) {
	var g flightGroup[string]
	release := make(chan struct{})
	var fnErr atomic.Value
	fn := func(ctx context.Context) (string, error) {
		select {
		case <-release:
			return "done", nil
		case <-ctx.Done():
			fnErr.Store(ctx.Err())
			return "", ctx.Err()
		}
	}

	first, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err, _ := g.do(first, "k", time.Minute, fn)
		firstErr <- err
	}()
	waitFor(t, func() bool { return waiters(&g, "k") == 1 })

	second := make(chan error, 1)
	go func() {
		v, err, shared := g.do(context.Background(), "k", time.Minute, fn)
		if err == nil && (v != "done" || !shared) {
			err = errors.New("second caller did not share the first call")
		}
		second <- err
	}()
	waitFor(t, func() bool { return waiters(&g, "k") == 2 })

	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v, want context.Canceled", err)
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("remaining caller: %v", err)
	}
	if v := fnErr.Load(); v != nil {
		t.Fatalf("shared call was cancelled: %v", v)
	}
}

func TestFlightAbandonedCallIsCancelled(t *testing.T) {
	var g flightGroup[int]
	stopped := make(chan error, 1)
	fn := func(ctx context.Context) (int, error) {
		<-ctx.Done()
		stopped <- ctx.Err()
		return 0, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.do(ctx, "k", time.Hour, fn)
	}()
	waitFor(t, func() bool { return waiters(&g, "k") == 1 })
	cancel()
	<-done
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("abandoned call ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("abandoned call still running")
	}
	if waiters(&g, "k") != -1 {
		t.Fatal("abandoned flight still registered")
	}
}

func TestFlightTimeoutIsTheStartersAndDetached(t *testing.T) {
	var g flightGroup[int]
	deadline := make(chan time.Duration, 1)
	fn := func(ctx context.Context) (int, error) {
		if ctx.Value(ctxKey{}) != nil {
			t.Error("call context carries the caller's values")
		}
		d, ok := ctx.Deadline()
		if !ok {
			deadline <- -1
			return 0, nil
		}
		deadline <- time.Until(d)
		return 1, nil
	}
	// The caller's own, shorter deadline must not reach the call.
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, "v"), time.Minute)
	defer cancel()
	if _, err, _ := g.do(ctx, "k", 3*time.Minute, fn); err != nil {
		t.Fatal(err)
	}
	if d := <-deadline; d <= 2*time.Minute || d > 3*time.Minute {
		t.Fatalf("call deadline in %v, want the starter's 3m", d)
	}

	timedOut := func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	if _, err, _ := g.do(context.Background(), "t", 20*time.Millisecond, timedOut); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call past its timeout returned %v", err)
	}
}

func TestFlightDoneContext(t *testing.T) {
	var g flightGroup[int]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	_, err, _ := g.do(ctx, "k", time.Minute, func(context.Context) (int, error) { ran = true; return 0, nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("done context: err=%v ran=%v", err, ran)
	}
}

type ctxKey struct{}

// waiters returns how many callers wait on key, -1 when no call runs.
func waiters[T any](g *flightGroup[T], key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.flights[key]
	if !ok {
		return -1
	}
	return f.waiters
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if !testbed.Poll(5*time.Second, time.Millisecond, cond) {
		t.Fatal("condition not met within 5s")
	}
}
