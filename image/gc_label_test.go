package image

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
)

func (f *fakeGCStore) label(_ context.Context, ref string, labels map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.images[ref]
	if !ok {
		return errdefs.ErrNotFound
	}
	merged := map[string]string{}
	maps.Copy(merged, cur)
	maps.Copy(merged, labels)
	f.images[ref] = merged
	f.labelled = append(f.labelled, ref)
	return nil
}

func (f *fakeGCStore) labels(ref string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.images[ref])
}

func (f *fakeGCStore) writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.labelled)
}

// settable is a clock for the collector's now.
type settable struct {
	mu sync.Mutex
	t  time.Time
}

func (s *settable) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t
}

func (s *settable) set(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t = t
}

// A task's start and end write the image's last use on its label, at most
// once a minute; a warm writes both labels every time; a removed image is
// forgotten; a rescan records no use.
func TestGCLastUseLabel(t *testing.T) {
	store := newFakeStore("a", "b")
	clock := &settable{t: at(0)}
	g := newGCAt(GCConfig{Enabled: true, Delay: delay}, store, (&fakeClock{}).afterFunc, clock.now, hclog.NewNullLogger())
	t.Cleanup(g.Stop)
	stamp := func(min int) string { return at(min).Format(time.RFC3339) }
	want := func(ref string, writes int, kv ...string) {
		t.Helper()
		waitGC(t, func() bool { return len(store.writes()) == writes })
		labels := store.labels(ref)
		for i := 0; i+1 < len(kv); i += 2 {
			if labels[kv[i]] != kv[i+1] {
				t.Fatalf("%s labels %v, want %s=%q (writes %q)", ref, labels, kv[i], kv[i+1], store.writes())
			}
		}
	}

	if err := g.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.Use("a")
	g.Started("a")
	want("a", 1, LastUsedLabel, stamp(0))
	clock.set(at(0).Add(30 * time.Second))
	g.Use("a")
	g.Started("a") // half a minute later: no write
	g.Release("a")
	want("a", 1, LastUsedLabel, stamp(0))
	clock.set(at(2))
	g.Release("a") // a minute after the last write
	want("a", 2, LastUsedLabel, stamp(2))

	g.Use("b")
	g.Warmed("b")
	want("b", 3, LastUsedLabel, stamp(2), WarmedLabel, stamp(2))
	g.Use("b")
	g.Warmed("b") // a warm always writes
	want("b", 4, WarmedLabel, stamp(2))

	g.Use("gone") // the image went before its task began: no error, no label
	g.Started("gone")
	waitGC(t, func() bool { return len(store.writes()) == 4 })
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.starting) != 0 {
		t.Fatalf("starts left: %v", g.starting)
	}
}

// Under disk pressure images whose delay runs go only after all others,
// and a warmed image is kept for its delay, whether this plugin warmed it
// or its label says an earlier one did.
func TestGCDiskPressureDelayAndWarm(t *testing.T) {
	store := diskGCStore{fakeGCStore: newFakeStore("x", "y", "w", "w-old", "w-restart"), lastUsed: map[string]time.Time{
		"x": at(1), "y": at(4), "w": at(0), "w-old": at(0), "w-restart": at(0),
	}}
	store.images["w-old"] = map[string]string{WarmedLabel: at(2).Format(time.RFC3339)}     // its delay ended at 5
	store.images["w-restart"] = map[string]string{WarmedLabel: at(9).Format(time.RFC3339)} // warmed before a restart
	store.onRemove = func(context.Context, string) error { return nil }
	clock := &settable{t: at(2)}
	timers := &fakeClock{}
	g := newGCAt(GCConfig{Enabled: true, Delay: delay, Disk: DiskPressure{High: 95, Low: 90, Interval: time.Hour}}, store, timers.afterFunc,
		clock.now, hclog.NewNullLogger())
	t.Cleanup(g.Stop)
	g.mu.Lock()
	g.disk.measure = func([]string) (float64, error) { return 99 - float64(len(store.removals())), nil }
	g.mu.Unlock()

	g.Use("x")
	g.Started("x")
	g.Release("x") // at 2: its delay runs until 5, then it goes by the timer
	clock.set(at(9))
	g.Use("w")
	g.Warmed("w")
	clock.set(at(10))
	g.CheckDisk()
	waitGC(t, func() bool { return len(store.removals()) == 3 })
	waitGC(t, g.diskIdle)
	if got := store.removals(); !slices.Equal(got, []string{"w-old", "y", "x"}) {
		t.Fatalf("removed %q, want w-old and y (no delay runs, least recently used first), then x", got)
	}
}

func TestLabelTime(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   time.Time
	}{
		{"written by the driver", map[string]string{LastUsedLabel: "2026-05-01T12:03:00Z"}, at(3)},
		{"another zone", map[string]string{LastUsedLabel: "2026-05-01T14:03:00+02:00"}, at(3)},
		{"absent", map[string]string{WarmedLabel: "2026-05-01T12:03:00Z"}, time.Time{}},
		{"no labels", nil, time.Time{}},
		{"not a time", map[string]string{LastUsedLabel: "yesterday"}, time.Time{}},
		{"a date alone", map[string]string{LastUsedLabel: "2026-05-01"}, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := labelTime(tc.labels, LastUsedLabel); !got.Equal(tc.want) {
				t.Fatalf("labelTime(%v) = %v, want %v", tc.labels, got, tc.want)
			}
		})
	}
}
