package driver

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/userns"
)

// Recovered tasks keep their host IDs: a state's range is recorded, one
// that overlaps another task's is refused, and a new plugin config's pool
// hands out none of the ranges live tasks hold.
func TestRecoveredIDRanges(t *testing.T) {
	slot := func(i uint32) *userns.Range {
		return &userns.Range{Start: defaultIDRangeStart + i*userns.Size, Size: userns.Size}
	}
	for _, tc := range []struct {
		name   string
		states []TaskState
		err    string // of the last state's restore
		live   int
	}{
		{name: "host user namespace holds no range", states: []TaskState{{ContainerID: "a"}}, live: 0},
		{name: "ranges of two tasks", states: []TaskState{{ContainerID: "a", UserNS: slot(0)}, {ContainerID: "b", UserNS: slot(3)}}, live: 2},
		{name: "the same task recovered twice", states: []TaskState{{ContainerID: "a", UserNS: slot(1)}, {ContainerID: "a", UserNS: slot(1)}}, live: 1},
		{name: "overlapping ranges", states: []TaskState{{ContainerID: "a", UserNS: slot(1)}, {ContainerID: "b", UserNS: &userns.Range{Start: slot(1).Start + 5, Size: userns.Size}}},
			err: "failed to recover the task's user namespace: failed to restore host IDs 2147549189-2147614724 of b: they overlap 2147549184-2147614719 of a", live: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newIDPool(defaultIDRangeStart, defaultIDRangeCount, nil, hclog.NewNullLogger())
			must.NoError(t, err)
			for i, ts := range tc.states {
				err := restoreIDs(p, ts)
				if i == len(tc.states)-1 && tc.err != "" {
					must.EqError(t, err, tc.err)
				} else {
					must.NoError(t, err)
				}
			}
			must.SliceLen(t, tc.live, p.Live())

			// a reconfigured plugin keeps them, and hands out others
			next, err := newIDPool(defaultIDRangeStart, 8*userns.Size, p, hclog.NewNullLogger())
			must.NoError(t, err)
			must.Eq(t, p.Live(), next.Live())
			for range 8 - tc.live {
				r, err := next.Reserve("new")
				must.NoError(t, err)
				for _, o := range p.Live() {
					must.NotEq(t, o.Range, r)
				}
				next.Release("new")
			}
		})
	}
}

func TestIDPoolConfigErrors(t *testing.T) {
	_, err := newIDPool(defaultIDRangeStart, 100, nil, hclog.NewNullLogger())
	must.EqError(t, err, "invalid plugin config: userns.range_count: 100 must be a positive multiple of 65536 (one task's IDs)")
}
