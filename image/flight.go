package image

import (
	"context"
	"sync"
	"time"
)

// flightGroup runs at most one call per key at a time and shares its result
// with every caller that asks for the same key while it runs. Unlike
// x/sync/singleflight, the call runs under its own context: it is bounded by
// the timeout of the caller that started it and is cancelled only when every
// waiting caller has gone, so one caller's cancellation never fails the call
// for the others, and an abandoned call does not run on. What the call
// publishes while it runs reaches every caller waiting on it.
type flightGroup[T any] struct {
	mu      sync.Mutex
	flights map[string]*flight[T]
}

type flight[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
	cancel  context.CancelFunc

	// watchers get what the call publishes; guarded by the group's mu.
	watchers  map[int]func(Progress)
	nextWatch int
	// deliver serialises deliveries, and a watcher's removal with them, so
	// that no watcher is called after its caller has returned.
	deliver sync.Mutex
}

// do returns the result of fn for key, starting fn unless a call for key is
// already running. fn gets a context detached from ctx, with timeout (none
// when timeout <= 0). The caller waits until the call ends or ctx is done,
// and a caller that joined a call started by another at most timeout;
// shared tells whether it joined.
func (g *flightGroup[T]) do(ctx context.Context, key string, timeout time.Duration, fn func(context.Context) (T, error)) (val T, err error, shared bool) {
	return g.doWatched(ctx, key, timeout, nil, func(ctx context.Context, _ func(Progress)) (T, error) { return fn(ctx) })
}

// doWatched is do where fn can publish progress: watch, when not nil, is
// called with every Progress fn publishes while this caller waits, whether
// the caller started the call or joined it. Calls of watch never overlap
// and none comes after doWatched has returned.
func (g *flightGroup[T]) doWatched(ctx context.Context, key string, timeout time.Duration, watch func(Progress), fn func(context.Context, func(Progress)) (T, error)) (val T, err error, shared bool) {
	if err := ctx.Err(); err != nil {
		return val, err, false
	}

	g.mu.Lock()
	if g.flights == nil {
		g.flights = make(map[string]*flight[T])
	}
	f, shared := g.flights[key]
	if shared {
		f.waiters++
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
	} else {
		var fctx context.Context
		f = &flight[T]{done: make(chan struct{}), waiters: 1}
		if timeout > 0 {
			fctx, f.cancel = context.WithTimeout(context.Background(), timeout)
		} else {
			fctx, f.cancel = context.WithCancel(context.Background())
		}
		g.flights[key] = f
		go g.run(key, f, fctx, fn)
	}
	watchID := -1
	if watch != nil {
		if f.watchers == nil {
			f.watchers = make(map[int]func(Progress))
		}
		watchID = f.nextWatch
		f.nextWatch++
		f.watchers[watchID] = watch
	}
	g.mu.Unlock()
	defer g.unwatch(f, watchID)

	select {
	case <-f.done:
		return f.val, f.err, shared
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		abandoned := f.waiters == 0
		if abandoned && g.flights[key] == f {
			delete(g.flights, key)
		}
		g.mu.Unlock()
		if abandoned {
			f.cancel()
		}
		return val, ctx.Err(), shared
	}
}

func (g *flightGroup[T]) unwatch(f *flight[T], id int) {
	if id < 0 {
		return
	}
	f.deliver.Lock()
	defer f.deliver.Unlock()
	g.mu.Lock()
	delete(f.watchers, id)
	g.mu.Unlock()
}

// publish hands p to every caller now watching f.
func (g *flightGroup[T]) publish(f *flight[T], p Progress) {
	f.deliver.Lock()
	defer f.deliver.Unlock()
	g.mu.Lock()
	watchers := make([]func(Progress), 0, len(f.watchers))
	for _, w := range f.watchers {
		watchers = append(watchers, w)
	}
	g.mu.Unlock()
	for _, w := range watchers {
		w(p)
	}
}

func (g *flightGroup[T]) run(key string, f *flight[T], ctx context.Context, fn func(context.Context, func(Progress)) (T, error)) {
	f.val, f.err = fn(ctx, func(p Progress) { g.publish(f, p) })
	g.mu.Lock()
	if g.flights[key] == f {
		delete(g.flights, key)
	}
	g.mu.Unlock()
	f.cancel()
	close(f.done)
}
