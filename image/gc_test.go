package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeClock fires the functions of its timers, synchronously, when advanced.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer // armed, in deadline order (one delay for all)
}

type fakeTimer struct {
	c  *fakeClock
	at time.Duration
	f  func()
}

func (c *fakeClock) afterFunc(d time.Duration, f func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	n := len(t.c.timers)
	t.c.timers = slices.DeleteFunc(t.c.timers, func(x *fakeTimer) bool { return x == t })
	return len(t.c.timers) < n
}

// advance moves the clock by d and runs what is due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	var due []*fakeTimer
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.at <= c.now {
			due = append(due, t)
		}
		return t.at <= c.now
	})
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// armed counts the timers neither stopped nor fired.
func (c *fakeClock) armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// fakeGCStore answers from its maps and records removals.
type fakeGCStore struct {
	mu       sync.Mutex
	images   map[string]map[string]string // ref -> labels
	users    map[string][]string          // ref -> container IDs
	removed  []string
	labelled []string                                    // refs whose labels were set, in order
	onCheck  func(ref string)                            // called from containersUsing
	onRemove func(ctx context.Context, ref string) error // before the removal; an error fails it
}

func newFakeStore(refs ...string) *fakeGCStore {
	f := &fakeGCStore{images: map[string]map[string]string{}, users: map[string][]string{}}
	for _, r := range refs {
		f.images[r] = nil
	}
	return f
}

func (f *fakeGCStore) containersUsing(_ context.Context, ref string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onCheck != nil {
		f.onCheck(ref)
	}
	return f.users[ref], nil
}

func (f *fakeGCStore) image(_ context.Context, ref string) (images.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	labels, ok := f.images[ref]
	if !ok {
		return images.Image{}, errdefs.ErrNotFound
	}
	return images.Image{Name: ref, Labels: labels, Target: ocispec.Descriptor{Digest: digest.FromString(ref)}}, nil
}

func (f *fakeGCStore) remove(ctx context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onRemove != nil {
		if err := f.onRemove(ctx, ref); err != nil {
			return err
		}
	}
	delete(f.images, ref)
	f.removed = append(f.removed, ref)
	return nil
}

func (f *fakeGCStore) unused(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for r := range f.images {
		if len(f.users[r]) == 0 {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeGCStore) setUsers(ref string, ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[ref] = ids
}

func (f *fakeGCStore) removals() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removed)
}

// syncBuffer collects log lines from timer goroutines.
type syncBuffer struct{ testbed.SyncBuffer }

// has reports whether a line with message msg carries the fields kv.
func (s *syncBuffer) has(msg string, kv ...string) bool {
	for _, line := range strings.Split(s.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["@message"] != msg {
			continue
		}
		i := 0
		for i+1 < len(kv) && fmt.Sprint(m[kv[i]]) == kv[i+1] {
			i += 2
		}
		if i+1 >= len(kv) {
			return true
		}
	}
	return false
}

const delay = 3 * time.Minute

type gcBed struct {
	gc    *GC
	store *fakeGCStore
	clock *fakeClock
	log   *syncBuffer
}

func newGCBed(t *testing.T, enabled bool, refs ...string) *gcBed {
	t.Helper()
	b := &gcBed{store: newFakeStore(refs...), clock: &fakeClock{}, log: &syncBuffer{}}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: b.log, JSONFormat: true})
	b.gc = newGC(GCConfig{Enabled: enabled, Delay: delay}, b.store, b.clock.afterFunc, logger)
	t.Cleanup(b.gc.Stop)
	return b
}

func (b *gcBed) wantRemoved(t *testing.T, want ...string) {
	t.Helper()
	if got := b.store.removals(); !slices.Equal(got, want) {
		t.Fatalf("removed %q, want %q\nlog:\n%s", got, want, b.log)
	}
}

func (b *gcBed) wantArmed(t *testing.T, want int) {
	t.Helper()
	if n := b.clock.armed(); n != want {
		t.Fatalf("%d timers armed, want %d", n, want)
	}
}

func TestGCReleaseRemovesAfterDelay(t *testing.T) {
	b := newGCBed(t, true, "a", "b")
	b.gc.Release("a")
	b.clock.advance(delay - time.Second)
	b.wantRemoved(t)
	b.clock.advance(time.Second)
	b.wantRemoved(t, "a")
	b.clock.advance(10 * delay)
	b.wantRemoved(t, "a")
	if !b.log.has("removed unused image", "@level", "info", "image", "a", "digest", digest.FromString("a").String()) {
		t.Fatalf("no info line with image and digest in\n%s", b.log)
	}
}

// Use, Stop and a disabled collector leave no timer and remove nothing.
func TestGCNoRemoval(t *testing.T) {
	for name, c := range map[string]struct {
		disabled bool
		run      func(b *gcBed)
	}{
		"use cancels":  {run: func(b *gcBed) { b.gc.Release("a"); b.clock.advance(delay / 2); b.gc.Use("a") }},
		"stop cancels": {run: func(b *gcBed) { b.gc.Release("a"); b.gc.Stop(); b.gc.Release("b") }},
		"disabled":     {disabled: true, run: func(b *gcBed) { b.gc.Release("a"); b.gc.Use("a"); _ = b.gc.Rescan(context.Background()) }},
	} {
		t.Run(name, func(t *testing.T) {
			b := newGCBed(t, !c.disabled, "a", "b")
			c.run(b)
			b.wantArmed(t, 0)
			b.clock.advance(10 * delay)
			b.wantRemoved(t)
		})
	}
}

func TestGCReleaseAgainRestartsDelay(t *testing.T) {
	b := newGCBed(t, true, "a")
	b.gc.Release("a")
	b.clock.advance(delay - time.Second)
	b.gc.Release("a")
	b.clock.advance(2 * time.Second) // past the first deadline
	b.wantRemoved(t)
	b.wantArmed(t, 1)
	b.clock.advance(delay)
	b.wantRemoved(t, "a")
}

func TestGCInUseAtRemovalTime(t *testing.T) {
	b := newGCBed(t, true, "a")
	b.gc.Release("a")
	b.store.setUsers("a", "c1") // a container appears during the delay
	b.clock.advance(delay)
	b.wantRemoved(t)
	if !b.log.has("image kept", "@level", "debug", "image", "a", "reason", "in use") {
		t.Fatalf("no debug line for the kept image in\n%s", b.log)
	}

	b.store.setUsers("a")
	b.gc.Release("a")
	b.clock.advance(delay)
	b.wantRemoved(t, "a")
}

func TestGCPinned(t *testing.T) {
	for _, c := range []struct {
		labels map[string]string
		kept   bool
	}{
		{map[string]string{PinnedLabel: "pinned"}, true},
		{map[string]string{DriverPinnedLabel: "true"}, true},
		{map[string]string{DriverPinnedLabel: "false", PinnedLabel: "no"}, false},
		{map[string]string{"other": "pinned"}, false},
	} {
		b := newGCBed(t, true)
		b.store.images["a"] = c.labels
		b.gc.Release("a")
		b.clock.advance(delay)
		if c.kept {
			b.wantRemoved(t)
			if !b.log.has("image kept", "image", "a", "reason", "pinned") {
				t.Fatalf("no debug line for the pinned image in\n%s", b.log)
			}
		} else {
			b.wantRemoved(t, "a")
		}
	}
}

func TestGCRemoveErrorIsLogged(t *testing.T) {
	b := newGCBed(t, true, "a")
	b.store.onRemove = func(context.Context, string) error { return errors.New("boom") }
	b.gc.Release("a")
	b.clock.advance(delay)
	b.wantRemoved(t)
	if !b.log.has("failed to remove unused image", "@level", "warn", "error", "failed to delete image a: boom") {
		t.Fatalf("no warning for the failed removal in\n%s", b.log)
	}
	b.store.onRemove = nil // the fake clock runs removals on this goroutine
	b.gc.Release("a")
	b.clock.advance(delay)
	b.wantRemoved(t, "a")

	b.gc.Release("a") // gone now: nothing to remove, no failure
	b.clock.advance(delay)
	b.wantRemoved(t, "a")
	if !b.log.has("image kept", "image", "a", "reason", "already removed") {
		t.Fatalf("no debug line for the missing image in\n%s", b.log)
	}
}

// A task that starts while the removal is under way keeps the image when
// it comes before the deletion, and Use returns only once the removal ended.
func TestGCUseDuringRemoval(t *testing.T) {
	b := newGCBed(t, true, "a")
	used := make(chan struct{})
	b.store.onCheck = func(ref string) {
		go func() { b.gc.Use(ref); close(used) }()
		waitFor(t, func() bool {
			b.gc.mu.Lock()
			defer b.gc.mu.Unlock()
			return b.gc.removing[ref].used
		})
		select {
		case <-used:
			t.Error("Use returned during the removal")
		default:
		}
	}
	b.gc.Release("a")
	b.clock.advance(delay)
	<-used
	b.wantRemoved(t)
}

// Stop aborts a removal under way and waits for it.
func TestGCStopAbortsRemoval(t *testing.T) {
	b := newGCBed(t, true, "a")
	entered := make(chan struct{})
	b.store.onRemove = func(ctx context.Context, _ string) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	}
	b.gc.Release("a")
	fired := make(chan struct{})
	go func() { b.clock.advance(delay); close(fired) }()
	<-entered
	stopped := make(chan struct{})
	go func() { b.gc.Stop(); close(stopped) }()
	for _, ch := range []chan struct{}{stopped, fired} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("Stop did not abort the removal under way")
		}
	}
	b.wantRemoved(t)
}

func TestGCRescan(t *testing.T) {
	b := newGCBed(t, true, "old", "running")
	b.store.setUsers("running", "c1")
	if err := b.gc.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.clock.advance(delay)
	b.wantRemoved(t, "old")
}

// The collector on real timers, with a tiny delay.
func TestGCRealTimer(t *testing.T) {
	f := newFakeStore("a", "b")
	g := newGC(GCConfig{Enabled: true, Delay: 10 * time.Millisecond}, f, realAfterFunc, nil)
	defer g.Stop()
	g.Release("a")
	g.Release("b")
	g.Use("b")
	waitFor(t, func() bool { return len(f.removals()) > 0 })
	time.Sleep(100 * time.Millisecond)
	if got := f.removals(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("removed %q, want only a", got)
	}
}

// A start in flight (Use without Started or Failed) keeps its image past a
// removal that comes due; a failed start releases it.
func TestGCStartInFlight(t *testing.T) {
	b := newGCBed(t, true, "a", "b")
	b.gc.Use("a")
	b.gc.Use("b")
	b.gc.Release("a")
	b.gc.Release("b")
	b.gc.Started("b")
	b.clock.advance(delay)
	b.wantRemoved(t, "b")
	b.gc.Failed("a")
	b.wantArmed(t, 1)
	b.clock.advance(delay)
	b.wantRemoved(t, "b", "a")
}
