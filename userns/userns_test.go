package userns

import (
	"fmt"
	"sync"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/shoenig/test/must"
)

func TestNewPool(t *testing.T) {
	for _, tc := range []struct {
		name         string
		start, count uint32
		err          string
	}{
		{name: "one slot", start: 100000, count: Size},
		{name: "many slots", start: 1 << 31, count: 1024 * Size},
		{name: "zero count", start: 100000, count: 0, err: "range_count: 0 must be a positive multiple of 65536"},
		{name: "not a multiple", start: 100000, count: Size + 1, err: "range_count: 65537 must be a positive multiple of 65536"},
		{name: "past the last ID", start: 1<<32 - Size, count: Size, err: "range_start + range_count: 4294901760 + 65536 must stay below 4294967295"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPool(tc.start, tc.count)
			if tc.err != "" {
				must.ErrorContains(t, err, tc.err)
				must.Nil(t, p)
				return
			}
			must.NoError(t, err)
			must.Eq(t, tc.count/Size, p.slots)
		})
	}
}

// op is one step of a pool's life; want is the range Reserve returns or
// the error it or Restore gives.
type op struct {
	do    string // reserve, restore, release, peek (err "none": nothing free)
	owner string
	r     Range
	want  Range
	err   string
}

func TestPoolSteps(t *testing.T) {
	slot := func(i uint32) Range { return Range{Start: 100000 + i*Size, Size: Size} }
	for _, tc := range []struct {
		name  string
		slots uint32
		ops   []op
		live  []Owned
	}{
		{name: "reserves in order, same owner keeps its range", slots: 3, ops: []op{
			{do: "reserve", owner: "a", want: slot(0)},
			{do: "reserve", owner: "b", want: slot(1)},
			{do: "reserve", owner: "a", want: slot(0)},
		}, live: []Owned{{"a", slot(0)}, {"b", slot(1)}}},
		{name: "exhausted, then a release frees one", slots: 2, ops: []op{
			{do: "reserve", owner: "a", want: slot(0)},
			{do: "reserve", owner: "b", want: slot(1)},
			{do: "peek", err: "none"},
			{do: "reserve", owner: "c", err: "failed to reserve host IDs for c: every ID range of the pool is taken (2 ranges of 65536 IDs from 100000)"},
			{do: "release", owner: "a"},
			{do: "peek", want: slot(0)},
			{do: "reserve", owner: "c", want: slot(0)},
		}, live: []Owned{{"c", slot(0)}, {"b", slot(1)}}},
		{name: "next fit: a freed slot is not handed out at once", slots: 3, ops: []op{
			{do: "peek", want: slot(0)},
			{do: "reserve", owner: "a", want: slot(0)},
			{do: "release", owner: "a"},
			{do: "peek", want: slot(1)},
			{do: "peek", want: slot(1)},
			{do: "reserve", owner: "b", want: slot(1)},
		}, live: []Owned{{"b", slot(1)}}},
		{name: "restored ranges are skipped", slots: 3, ops: []op{
			{do: "restore", owner: "a", r: slot(0)},
			{do: "restore", owner: "b", r: slot(2)},
			{do: "peek", want: slot(1)},
			{do: "reserve", owner: "c", want: slot(1)},
			{do: "reserve", owner: "d", err: "every ID range of the pool is taken"},
		}, live: []Owned{{"a", slot(0)}, {"c", slot(1)}, {"b", slot(2)}}},
		{name: "a restored range off the slots takes every slot it touches", slots: 3, ops: []op{
			{do: "restore", owner: "a", r: Range{Start: 100000 + Size/2, Size: Size}},
			{do: "reserve", owner: "b", want: slot(2)},
			{do: "release", owner: "a"},
			{do: "reserve", owner: "c", want: slot(0)},
		}, live: []Owned{{"c", slot(0)}, {"b", slot(2)}}},
		{name: "two restored ranges share a slot until both go", slots: 2, ops: []op{
			{do: "restore", owner: "a", r: Range{Start: 100000, Size: 100}},
			{do: "restore", owner: "b", r: Range{Start: 100100, Size: 100}},
			{do: "release", owner: "a"},
			{do: "reserve", owner: "c", want: slot(1)},
			{do: "reserve", owner: "d", err: "every ID range of the pool is taken"},
			{do: "release", owner: "b"},
			{do: "reserve", owner: "d", want: slot(0)},
		}, live: []Owned{{"d", slot(0)}, {"c", slot(1)}}},
		{name: "a restored range outside the pool is kept and takes no slot", slots: 1, ops: []op{
			{do: "restore", owner: "a", r: Range{Start: 1 << 31, Size: Size}},
			{do: "reserve", owner: "b", want: slot(0)},
		}, live: []Owned{{"b", slot(0)}, {"a", Range{Start: 1 << 31, Size: Size}}}},
		{name: "overlapping restores are refused", slots: 2, ops: []op{
			{do: "restore", owner: "a", r: slot(0)},
			{do: "restore", owner: "b", r: Range{Start: 100000 + 10, Size: Size}, err: "failed to restore host IDs 100010-165545 of b: they overlap 100000-165535 of a"},
			{do: "restore", owner: "a", r: slot(0)},
			{do: "restore", owner: "a", r: slot(1), err: "failed to restore host IDs 165536-231071 of a: it holds 100000-165535 already"},
			{do: "restore", owner: "c", r: Range{Start: 5}, err: "failed to restore host IDs 5-4 of c: not a valid range"},
		}, live: []Owned{{"a", slot(0)}}},
		{name: "releasing an unknown owner does nothing", slots: 1, ops: []op{
			{do: "release", owner: "x"},
			{do: "reserve", owner: "a", want: slot(0)},
		}, live: []Owned{{"a", slot(0)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPool(100000, tc.slots*Size)
			must.NoError(t, err)
			for i, o := range tc.ops {
				msg := must.Sprintf("step %d: %s %s", i, o.do, o.owner)
				switch o.do {
				case "reserve":
					got, err := p.Reserve(o.owner)
					if o.err != "" {
						must.ErrorContains(t, err, o.err, msg)
						continue
					}
					must.NoError(t, err, msg)
					must.Eq(t, o.want, got, msg)
				case "restore":
					err := p.Restore(o.owner, o.r)
					if o.err != "" {
						must.EqError(t, err, o.err, msg)
						continue
					}
					must.NoError(t, err, msg)
				case "release":
					p.Release(o.owner)
				case "peek":
					got, ok := p.Peek()
					must.Eq(t, o.err != "none", ok, msg)
					must.Eq(t, o.want, got, msg)
				default:
					t.Fatalf("unknown step %q", o.do)
				}
			}
			must.Eq(t, tc.live, p.Live())
		})
	}
}

func TestRangeMappings(t *testing.T) {
	r := Range{Start: 200000, Size: Size}
	must.Eq(t, []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: Size}}, r.Mappings())
	must.Eq(t, "200000-265535", r.String())
}

// noOverlap fails when two live ranges share an ID.
func noOverlap(t *testing.T, live []Owned) {
	t.Helper()
	for i := 1; i < len(live); i++ {
		must.False(t, live[i-1].overlaps(live[i].Range), must.Sprintf("%s of %s overlaps %s of %s", live[i-1].Range, live[i-1].Owner, live[i].Range, live[i].Owner))
	}
}

// TestConcurrentReserves starts 100 tasks at once, then stops half while
// another 100 start: no two live ranges ever overlap, and a new pool that
// restores the live ranges (a plugin restarted after a kill) hands out
// none of them again.
func TestConcurrentReserves(t *testing.T) {
	p, err := NewPool(1<<31, 256*Size)
	must.NoError(t, err)
	run := func(n int, f func(i int)) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); f(i) }()
		}
		wg.Wait()
	}
	got := make([]Range, 100)
	run(100, func(i int) {
		r, err := p.Reserve(fmt.Sprintf("task-%d", i))
		if err == nil {
			got[i] = r
		}
	})
	live := p.Live()
	must.SliceLen(t, 100, live)
	noOverlap(t, live)
	for i, r := range got {
		must.Eq(t, Size, r.Size, must.Sprintf("task-%d got no range", i))
	}
	run(100, func(i int) {
		if i%2 == 0 {
			p.Release(fmt.Sprintf("task-%d", i))
		}
		_, _ = p.Reserve(fmt.Sprintf("late-%d", i))
	})
	live = p.Live()
	must.SliceLen(t, 150, live)
	noOverlap(t, live)

	restarted, err := NewPool(1<<31, 256*Size)
	must.NoError(t, err)
	run(len(live), func(i int) { must.NoError(t, restarted.Restore(live[i].Owner, live[i].Range)) })
	run(100, func(i int) { _, _ = restarted.Reserve(fmt.Sprintf("after-%d", i)) })
	after := restarted.Live()
	must.SliceLen(t, 250, after)
	noOverlap(t, after)
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Range
		err  bool
	}{
		{in: "2147483648-2147549183", want: Range{Start: 1 << 31, Size: Size}},
		{in: "100000-100000", want: Range{Start: 100000, Size: 1}},
		{in: "5-4", err: true},
		{in: "100000", err: true},
		{in: "-1-5", err: true},
		{in: "a-b", err: true},
		{in: "0-4294967295", err: true},
		{in: "", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRange(tc.in)
			if tc.err {
				must.ErrorContains(t, err, "is not a range of host IDs")
				return
			}
			must.NoError(t, err)
			must.Eq(t, tc.want, r)
			must.Eq(t, tc.in, r.String())
		})
	}
}
