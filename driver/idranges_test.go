package driver

import (
	"fmt"
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

func TestParseUserNSConfig(t *testing.T) {
	for _, tc := range []struct {
		name, hcl string
		want      UserNSConfig
		err       string
	}{
		{name: "no block", hcl: ``, want: UserNSConfig{Default: "host", RangeStart: 1 << 31, RangeCount: 4096 * 65536}},
		{name: "defaults", hcl: `userns {}`, want: UserNSConfig{Default: "host", RangeStart: 1 << 31, RangeCount: 4096 * 65536}},
		{name: "auto", hcl: `userns { default = "auto" }`, want: UserNSConfig{Default: "auto", RangeStart: 1 << 31, RangeCount: 4096 * 65536}},
		{name: "own range", hcl: "userns {\n range_start = 100000\n range_count = 131072\n}", want: UserNSConfig{Default: "host", RangeStart: 100000, RangeCount: 131072}},
		{name: "bad default", hcl: `userns { default = "private" }`, err: `userns.default: "private" is not one of "auto", "host"`},
		{name: "root", hcl: `userns { range_start = 0 }`, err: "userns.range_start: 0 must be a host ID from 1 to 4294967294 (0 is the host's root)"},
		{name: "negative", hcl: `userns { range_start = -5 }`, err: "userns.range_start: -5 must be a host ID from 1 to 4294967294 (0 is the host's root)"},
		{name: "no IDs", hcl: `userns { range_count = 0 }`, err: "userns.range_count: 0 must be a positive multiple of 65536 (one task's IDs)"},
		{name: "not whole ranges", hcl: `userns { range_count = 70000 }`, err: "userns.range_count: 70000 must be a positive multiple of 65536 (one task's IDs)"},
		{name: "past the last ID", hcl: "userns {\n range_start = 4294901760\n range_count = 65536\n}", err: "userns.range_start + range_count: 4294901760 + 65536 must stay below 4294967295 (the kernel's largest ID is reserved)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(decodePluginHCL(t, tc.hcl))
			if tc.err != "" {
				must.EqError(t, err, tc.err)
				return
			}
			must.NoError(t, err)
			must.Eq(t, tc.want, c.UserNS)
		})
	}
}

func TestUserNSModeOption(t *testing.T) {
	for _, tc := range []struct {
		mode, def  string
		privileged bool
		want       bool // a range is reserved
		err        string
	}{
		{mode: "", def: "host"},
		{mode: "", def: "auto", want: true},
		{mode: "auto", def: "host", want: true},
		{mode: "host", def: "auto"},
		{mode: "", def: "auto", privileged: true},
		{mode: "auto", def: "host", privileged: true, err: `userns_mode: "auto" cannot be combined with privileged = true: a privileged task runs in the host's user namespace (userns_mode = "host")`},
		{mode: "private", def: "host", err: `userns_mode: "private" is not one of "auto", "host"`},
		{mode: "Auto", def: "host", err: `userns_mode: "Auto" is not one of "auto", "host"`},
	} {
		t.Run(fmt.Sprintf("%s/%s/%v", tc.mode, tc.def, tc.privileged), func(t *testing.T) {
			task, err := parseTaskConfig(rawTaskConfig{Image: "busybox", UserNSMode: tc.mode, Privileged: tc.privileged})
			if err == nil {
				p, perr := userns.NewPool(defaultIDRangeStart, userns.Size)
				must.NoError(t, perr)
				var r *userns.Range
				r, err = reserveIDs(p, "web-1", task.UserNSMode, task.Privileged, tc.def)
				if err == nil {
					must.Eq(t, tc.want, r != nil)
				}
				if err == nil && tc.want {
					_, err := reserveIDs(p, "web-2", task.UserNSMode, task.Privileged, tc.def)
					must.EqError(t, err, `userns_mode: "auto": failed to reserve host IDs for web-2: every ID range of the pool is taken (1 ranges of 65536 IDs from 2147483648)`)
				}
			}
			if tc.err != "" {
				must.EqError(t, err, tc.err)
				return
			}
			must.NoError(t, err)
		})
	}
}
