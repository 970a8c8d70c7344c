package image

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestParseWatermark(t *testing.T) {
	cases := []struct {
		in   string
		want float64
		err  bool
	}{
		{"90%", 90, false},
		{"90", 90, false},
		{" 87.5 % ", 87.5, false},
		{"0.5%", 0.5, false},
		{"99.9", 99.9, false},
		{"0", 0, true},
		{"100%", 0, true},
		{"-5%", 0, true},
		{"", 0, true},
		{"%", 0, true},
		{"ninety", 0, true},
		{"NaN", 0, true},
		{"90%%", 0, true},
	}
	for _, c := range cases {
		got, err := ParseWatermark("gc.disk_high", c.in)
		if c.err {
			if err == nil || !strings.Contains(err.Error(), "gc.disk_high: \""+c.in+"\" is not a percentage") {
				t.Errorf("ParseWatermark(%q) = %v, %v; want an error naming the field and value", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseWatermark(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestParseDiskPressure(t *testing.T) {
	cases := []struct {
		high, low string
		want      DiskPressure
		err       string
	}{
		{"", "", DiskPressure{}, ""},
		{"90%", "80%", DiskPressure{High: 90, Low: 80, Interval: DefaultDiskCheckInterval}, ""},
		{"85", "84.9", DiskPressure{High: 85, Low: 84.9, Interval: DefaultDiskCheckInterval}, ""},
		{"90%", "", DiskPressure{}, "set both or neither"},
		{"", "80%", DiskPressure{}, "set both or neither"},
		{"80%", "80%", DiskPressure{}, `gc.disk_low: "80%" must be below gc.disk_high "80%"`},
		{"80%", "90%", DiskPressure{}, `gc.disk_low: "90%" must be below gc.disk_high "80%"`},
		{"120%", "80%", DiskPressure{}, `gc.disk_high: "120%" is not a percentage`},
		{"90%", "x", DiskPressure{}, `gc.disk_low: "x" is not a percentage`},
	}
	for _, c := range cases {
		got, err := ParseDiskPressure(c.high, c.low)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseDiskPressure(%q, %q) error %v, want one containing %q", c.high, c.low, err, c.err)
		case c.err == "" && (err != nil || !slices.Equal(got.Paths, c.want.Paths) || got.High != c.want.High || got.Low != c.want.Low || got.Interval != c.want.Interval):
			t.Errorf("ParseDiskPressure(%q, %q) = %+v, %v; want %+v", c.high, c.low, got, err, c.want)
		}
	}
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func names(imgs []imageUse) []string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.name)
	}
	return out
}

func TestEvictionOrder(t *testing.T) {
	cases := []struct {
		name string
		in   []imageUse
		want []string
	}{
		{"empty", nil, nil},
		{"least recently used first", []imageUse{{name: "c", lastUsed: at(3)}, {name: "a", lastUsed: at(1)}, {name: "b", lastUsed: at(2)}}, []string{"a", "b", "c"}},
		{"ties by name", []imageUse{{name: "z", lastUsed: at(1)}, {name: "m", lastUsed: at(1)}, {name: "a", lastUsed: at(2)}}, []string{"m", "z", "a"}},
		{"pinned never", []imageUse{{name: "old-pinned", lastUsed: at(0), pinned: true}, {name: "b", lastUsed: at(2)}}, []string{"b"}},
		{"in use never", []imageUse{{name: "running", lastUsed: at(0), inUse: true}, {name: "b", lastUsed: at(5)}}, []string{"b"}},
		{"nothing removable", []imageUse{{name: "p", pinned: true}, {name: "u", inUse: true}}, nil},
		{"warmed within its delay never", []imageUse{{name: "warm", lastUsed: at(0), held: true}, {name: "b", lastUsed: at(5)}}, []string{"b"}},
		{"within the delay only after all others", []imageUse{{name: "x", lastUsed: at(1), delayed: true}, {name: "y", lastUsed: at(4)}, {name: "z", lastUsed: at(2), delayed: true}, {name: "a", lastUsed: at(3)}},
			[]string{"a", "y", "x", "z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := names(evictionOrder(c.in)); !slices.Equal(got, c.want) {
				t.Fatalf("order %q, want %q", got, c.want)
			}
		})
	}
}

// fakeDisk is a filesystem whose usage drops by the size of each image
// removed.
type fakeDisk struct {
	used  float64
	sizes map[string]float64
}

func TestReclaim(t *testing.T) {
	order := []imageUse{{name: "a"}, {name: "b"}, {name: "c"}, {name: "d"}}
	cases := []struct {
		name    string
		used    float64
		sizes   map[string]float64
		kept    string // remove says no for it (a start took it meanwhile)
		failing string // remove fails for it
		want    []string
		final   float64
	}{
		{"below low already", 79, map[string]float64{"a": 5}, "", "", nil, 79},
		{"stops at low", 95, map[string]float64{"a": 5, "b": 10, "c": 5, "d": 5}, "", "", []string{"a", "b"}, 80},
		{"all and still above", 99, map[string]float64{"a": 1, "b": 1, "c": 1, "d": 1}, "", "", []string{"a", "b", "c", "d"}, 95},
		{"a kept image is skipped", 90, map[string]float64{"a": 20, "b": 20}, "a", "", []string{"b"}, 70},
		{"a failed removal is skipped", 90, map[string]float64{"a": 20, "b": 20}, "", "a", []string{"b"}, 70},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := fakeDisk{used: c.used, sizes: c.sizes}
			var removed []string
			final, err := reclaim(order, 80, func() (float64, error) { return d.used, nil }, func(img imageUse) (bool, error) {
				switch img.name {
				case c.kept:
					return false, nil
				case c.failing:
					return false, errors.New("boom")
				}
				removed = append(removed, img.name)
				d.used -= d.sizes[img.name]
				return true, nil
			})
			if (err != nil) != (c.failing != "") {
				t.Fatalf("error %v", err)
			}
			if !slices.Equal(removed, c.want) || final != c.final {
				t.Fatalf("removed %q ending at %v%%, want %q ending at %v%%", removed, final, c.want, c.final)
			}
		})
	}
}

// diskGCStore adds the disk-pressure view to the fake store.
type diskGCStore struct {
	*fakeGCStore
	lastUsed map[string]time.Time
}

func (s diskGCStore) inventory(context.Context) ([]imageUse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []imageUse
	for r, labels := range s.images {
		last := labelTime(labels, LastUsedLabel)
		if last.IsZero() {
			last = s.lastUsed[r]
		}
		out = append(out, imageUse{name: r, lastUsed: last, warmed: labelTime(labels, WarmedLabel), pinned: pinned(labels), inUse: len(s.users[r]) > 0})
	}
	return out, nil
}

func (s diskGCStore) roots(context.Context) ([]string, error) { return []string{"/fake/root"}, nil }

// Under disk pressure the GC removes unused images least recently used
// first, the task's own last use counting over the record's, until the
// disk is at or below low; in-use, pinned and starting images stay. The
// slow timer runs the check and is armed again.
func TestGCDiskPressure(t *testing.T) {
	store := diskGCStore{fakeGCStore: newFakeStore("old", "older", "recent", "running", "pinned", "starting"), lastUsed: map[string]time.Time{
		"older": at(1), "old": at(2), "recent": at(3), "running": at(0), "pinned": at(0), "starting": at(0),
	}}
	store.images["pinned"] = map[string]string{DriverPinnedLabel: "true"}
	store.setUsers("running", "web-1")
	clock := &fakeClock{}
	log := &syncBuffer{}
	var mu sync.Mutex
	used := 96.0
	sizes := map[string]float64{"older": 4, "old": 4, "recent": 4}
	store.onRemove = func(context.Context, string) error { return nil }
	now := at(10)
	g := newGCAt(GCConfig{Enabled: true, Delay: delay, Disk: DiskPressure{High: 90, Low: 88, Interval: time.Minute}}, store, clock.afterFunc,
		func() time.Time { return now }, hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: log, JSONFormat: true}))
	t.Cleanup(g.Stop)
	g.mu.Lock()
	g.disk.measure = func(paths []string) (float64, error) {
		mu.Lock()
		defer mu.Unlock()
		u := used
		for _, r := range store.removals() {
			u -= sizes[r]
		}
		return u, nil
	}
	g.mu.Unlock()
	g.Use("starting") // a start holds it
	g.Use("older")    // "older" was used just now by a task that ended: the most recent
	g.Release("older")

	clock.advance(time.Minute) // the slow timer
	waitGC(t, func() bool { return len(store.removals()) == 2 })
	if got := store.removals(); !slices.Equal(got, []string{"old", "recent"}) {
		t.Fatalf("removed %q, want old then recent\n%s", got, log)
	}
	if !log.has("removed unused image", "image", "old", "reason", "disk pressure", "disk_high", "90", "disk_low", "88") {
		t.Fatalf("no removal log with the reason:\n%s", log)
	}
	waitGC(t, g.diskIdle)
	if !log.has("disk pressure check done", "@level", "info", "removed", "2", "disk_used_percent_before", "96", "disk_used_percent", "88") {
		t.Fatalf("no line ending the pass with what it removed:\n%s", log)
	}
	if n := clock.armed(); n != 2 { // older's gc.image_delay and the slow timer
		t.Fatalf("%d timers armed, want the delay of older and the slow timer again", n)
	}
	// at 88% nothing more goes, however often it is checked
	g.CheckDisk()
	g.CheckDisk()
	waitGC(t, g.diskIdle)
	if got := store.removals(); len(got) != 2 {
		t.Fatalf("removed %q below the high watermark", got)
	}
}

func (g *GC) diskIdle() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.disk.running
}

// waitGC waits for what a background check does.
func waitGC(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("the disk check did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Without watermarks, or with image GC off, no timer is armed and a check
// asked for removes nothing, however full the disk.
func TestGCDiskPressureOff(t *testing.T) {
	for name, cfg := range map[string]GCConfig{
		"no watermarks": {Enabled: true, Delay: delay},
		"image gc off":  {Enabled: false, Delay: delay, Disk: DiskPressure{High: 90, Low: 80}},
	} {
		t.Run(name, func(t *testing.T) {
			store := diskGCStore{fakeGCStore: newFakeStore("a"), lastUsed: map[string]time.Time{"a": at(0)}}
			clock := &fakeClock{}
			g := newGCAt(cfg, store, clock.afterFunc, time.Now, hclog.NewNullLogger())
			t.Cleanup(g.Stop)
			g.disk.measure = func([]string) (float64, error) { return 99, nil }
			g.CheckDisk()
			waitGC(t, g.diskIdle)
			if n := clock.armed(); n != 0 {
				t.Fatalf("%d timers armed", n)
			}
			if got := store.removals(); len(got) != 0 {
				t.Fatalf("removed %q", got)
			}
		})
	}
}
