package image

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeGCStore records removals and answers from its maps.
type fakeGCStore struct {
	mu      sync.Mutex
	used    map[string]bool
	pins    map[string]bool
	images  []string
	removed []string
	checked chan string // every expiry that reached the store
}

func newFakeStore() *fakeGCStore {
	return &fakeGCStore{used: map[string]bool{}, pins: map[string]bool{}, checked: make(chan string, 16)}
}

func (f *fakeGCStore) inUse(_ context.Context, ref string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.used[ref], nil
}

func (f *fakeGCStore) pinned(_ context.Context, ref string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pins[ref] {
		f.checked <- ref
	}
	return f.pins[ref], nil
}

func (f *fakeGCStore) remove(_ context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, ref)
	f.checked <- ref
	return nil
}

func (f *fakeGCStore) unused(context.Context) ([]string, error) { return f.images, nil }

func (f *fakeGCStore) removals() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.removed...)
}

// expect waits for the store to see ref reach the end of its check.
func (f *fakeGCStore) expect(t *testing.T, ref string) {
	t.Helper()
	select {
	case got := <-f.checked:
		if got != ref {
			t.Fatalf("checked %q, want %q", got, ref)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%q was never checked", ref)
	}
}

// quiet asserts that nothing reaches the store for a while.
func (f *fakeGCStore) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case got := <-f.checked:
		t.Fatalf("unexpected check of %q", got)
	case <-time.After(d):
	}
}

const delay = 30 * time.Millisecond

func TestGC(t *testing.T) {
	cases := []struct {
		name    string
		run     func(g *GC, f *fakeGCStore)
		removed []string
		checked []string // refs the store sees, in order; nil: none
	}{
		{name: "release then delay removes once", run: func(g *GC, f *fakeGCStore) { g.Release("a") },
			removed: []string{"a"}, checked: []string{"a"}},
		{name: "use cancels", run: func(g *GC, f *fakeGCStore) { g.Release("a"); g.Use("a") }},
		{name: "release twice is one removal", run: func(g *GC, f *fakeGCStore) { g.Release("a"); g.Release("a") },
			removed: []string{"a"}, checked: []string{"a"}},
		{name: "in use at expiry is kept", run: func(g *GC, f *fakeGCStore) { f.used["a"] = true; g.Release("a"); g.Release("b") },
			removed: []string{"b"}, checked: []string{"b"}},
		{name: "pinned is kept", run: func(g *GC, f *fakeGCStore) { f.pins["a"] = true; g.Release("a") },
			checked: []string{"a"}},
		{name: "stop cancels", run: func(g *GC, f *fakeGCStore) { g.Release("a"); g.Stop(); g.Release("b") }},
		{name: "rescan arms the unused", run: func(g *GC, f *fakeGCStore) {
			f.images = []string{"old"}
			_ = g.Rescan(context.Background())
		}, removed: []string{"old"}, checked: []string{"old"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeStore()
			g := newGC(GCConfig{Enabled: true, Delay: delay}, f, nil)
			defer g.Stop()
			c.run(g, f)
			for _, ref := range c.checked {
				f.expect(t, ref)
			}
			f.quiet(t, 5*delay)
			got := f.removals()
			if len(got) != len(c.removed) {
				t.Fatalf("removed %q, want %q", got, c.removed)
			}
			for i := range got {
				if got[i] != c.removed[i] {
					t.Fatalf("removed %q, want %q", got, c.removed)
				}
			}
		})
	}
}

func TestGCDisabled(t *testing.T) {
	f := newFakeStore()
	f.images = []string{"a"}
	g := newGC(GCConfig{Enabled: false, Delay: delay}, f, nil)
	g.Release("a")
	if err := g.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.quiet(t, 5*delay)
	if len(f.removals()) != 0 {
		t.Fatalf("disabled collector removed %q", f.removals())
	}
}
