package driver

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

func TestParseContainerGC(t *testing.T) {
	cases := []struct {
		name string
		body string
		want ContainerGC
		err  string
	}{
		{name: "no gc block", body: "", want: ContainerGC{Enabled: true, Grace: 5 * time.Minute}},
		{name: "gc block defaults", body: "gc {\n image = false\n}", want: ContainerGC{Enabled: true, Grace: 5 * time.Minute}},
		{name: "off", body: "gc {\n container = false\n}", want: ContainerGC{Enabled: false, Grace: 5 * time.Minute}},
		{name: "grace", body: "gc {\n container_grace = \"90s\"\n}", want: ContainerGC{Enabled: true, Grace: 90 * time.Second}},
		{name: "bad grace", body: "gc {\n container_grace = \"later\"\n}", err: `gc.container_grace: "later" is not a duration`},
		{name: "zero grace", body: "gc {\n container_grace = \"0s\"\n}", err: `gc.container_grace: "0s" must be greater than zero`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c := configCase(t, tc.body, tc.err); c != nil {
				must.Eq(t, tc.want, c.Containers)
			}
		})
	}
}

func TestReconcileInterval(t *testing.T) {
	must.Eq(t, time.Minute, reconcileInterval(5*time.Minute))
	must.Eq(t, 30*time.Second, reconcileInterval(time.Minute))
	must.Eq(t, 500*time.Millisecond, reconcileInterval(time.Second))
	must.Eq(t, minReconcileInterval, reconcileInterval(time.Millisecond))
}

func ours(id string, created time.Time) executor.ContainerInfo {
	return executor.ContainerInfo{ID: id, CreatedAt: created, Labels: map[string]string{
		labelDriver: pluginName, labelAllocID: "a1", labelTask: "web",
	}}
}

func ids(cs []executor.ContainerInfo) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	slices.Sort(out)
	return out
}

func TestSelectDangling(t *testing.T) {
	const grace = 5 * time.Minute
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	old := t0.Add(-time.Hour)
	unlabelled := executor.ContainerInfo{ID: "other", CreatedAt: old, Labels: map[string]string{"app": "x"}}
	otherDriver := executor.ContainerInfo{ID: "docker-made", CreatedAt: old, Labels: map[string]string{labelDriver: "docker", labelAllocID: "a2"}}
	noAlloc := executor.ContainerInfo{ID: "no-alloc", CreatedAt: old, Labels: map[string]string{labelDriver: pluginName}}
	ctrs := []executor.ContainerInfo{
		ours("orphan", old),
		ours("young", t0.Add(-time.Minute)),
		ours("known", old),
		unlabelled, otherDriver, noAlloc,
	}
	known := func(id string) bool { return id == "known" }
	seen := map[string]time.Time{}

	// first pass (e.g. right after a restart): everything is noted, nothing
	// goes, however old it is: Nomad has not recovered its tasks yet
	must.SliceEmpty(t, selectDangling(t0, grace, ctrs, known, seen))
	must.Eq(t, map[string]time.Time{"orphan": t0, "young": t0}, seen)

	// within the grace since the first sighting: still nothing
	must.SliceEmpty(t, selectDangling(t0.Add(grace-time.Second), grace, ctrs, known, seen))

	// a grace later: the old orphan goes; the young one is old enough now too
	got := selectDangling(t0.Add(grace), grace, ctrs, known, seen)
	must.Eq(t, []string{"orphan", "young"}, ids(got))

	// a container created after the first pass needs a grace of its own
	late := ours("late", t0.Add(grace-time.Second))
	must.SliceEmpty(t, selectDangling(t0.Add(grace), grace, []executor.ContainerInfo{late}, known, seen))
	must.Eq(t, map[string]time.Time{"late": t0.Add(grace)}, seen, must.Sprint("gone containers are forgotten"))
	must.SliceEmpty(t, selectDangling(t0.Add(2*grace-2*time.Second), grace, []executor.ContainerInfo{late}, known, seen))
	must.Eq(t, []string{"late"}, ids(selectDangling(t0.Add(2*grace), grace, []executor.ContainerInfo{late}, known, seen)))
}

func TestSelectDanglingRecoveredTaskStartsOver(t *testing.T) {
	const grace = time.Minute
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	c := []executor.ContainerInfo{ours("web-a1", t0.Add(-time.Hour))}
	held := false
	known := func(string) bool { return held }
	seen := map[string]time.Time{}
	must.SliceEmpty(t, selectDangling(t0, grace, c, known, seen))
	// RecoverTask claims it before the grace is up
	held = true
	must.SliceEmpty(t, selectDangling(t0.Add(30*time.Second), grace, c, known, seen))
	must.MapEmpty(t, seen)
	// its task is forgotten later (e.g. destroyed by a plugin that then
	// died before removing the container): a new grace starts
	held = false
	must.SliceEmpty(t, selectDangling(t0.Add(2*grace), grace, c, known, seen))
	must.Eq(t, []string{"web-a1"}, ids(selectDangling(t0.Add(3*grace), grace, c, known, seen)))
}

func TestTaskStoreClaims(t *testing.T) {
	s := newTaskStore()
	must.NoError(t, s.Reserve("t1", "web-a1"))
	must.ErrorContains(t, s.Reserve("t1", "web-a1"), "already started")
	must.True(t, s.Known("web-a1"))
	must.False(t, s.ClaimDangling("web-a1"), must.Sprint("a reserved container is never dangling"))
	_, ok := s.Get("t1")
	must.False(t, ok, must.Sprint("a reservation has no handle"))

	must.True(t, s.ClaimDangling("web-a2"))
	must.False(t, s.ClaimDangling("web-a2"))
	err := s.Reserve("t2", "web-a2")
	must.ErrorIs(t, err, errBeingRemoved)
	must.ErrorContains(t, err, "container web-a2 is being removed as dangling")
	s.ReleaseDangling("web-a2")
	must.NoError(t, s.Reserve("t2", "web-a2"))

	s.Delete("t1")
	must.False(t, s.Known("web-a1"))
	must.True(t, s.ClaimDangling("web-a1"))

	// a task whose state could not be read stays untouched
	s.Hold("web-a3")
	must.True(t, s.Known("web-a3"))
	must.False(t, s.ClaimDangling("web-a3"))
}

// TestReconcilerPass runs passes with a fake list and remove: only the
// selected containers are removed, a failed removal is tried again, and a
// container a task reserves meanwhile is left alone.
func TestReconcilerPass(t *testing.T) {
	t0 := time.Now()
	old := t0.Add(-time.Hour)
	var (
		mu      sync.Mutex
		removed []string
		failing = map[string]bool{"flaky": true}
	)
	store := newTaskStore()
	must.NoError(t, store.Reserve("t-known", "known"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &reconciler{
		grace: time.Minute,
		list: func(context.Context) ([]executor.ContainerInfo, error) {
			return []executor.ContainerInfo{ours("orphan", old), ours("flaky", old), ours("known", old)}, nil
		},
		remove: func(_ context.Context, c executor.ContainerInfo) error {
			mu.Lock()
			defer mu.Unlock()
			if failing[c.ID] {
				return errors.New("cni plugin failed (delete)")
			}
			removed = append(removed, c.ID)
			return nil
		},
		tasks:  store,
		logger: hclog.NewNullLogger(),
		seen:   map[string]time.Time{},
		ctx:    ctx,
	}
	r.pass(t0)
	must.SliceEmpty(t, removed)
	r.pass(t0.Add(time.Minute))
	must.Eq(t, []string{"orphan"}, removed)
	must.MapContainsKey(t, r.seen, "flaky", must.Sprint("a failed removal stays for the next pass"))
	mu.Lock()
	failing["flaky"] = false
	mu.Unlock()
	r.pass(t0.Add(2 * time.Minute))
	// the fake list still shows the removed orphan: seen anew, it waits a grace again
	must.Eq(t, []string{"orphan", "flaky"}, removed)
	must.False(t, store.ClaimDangling("known"))
}
