package executor

import (
	"reflect"
	"testing"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func metricOf(t *testing.T, v any, at time.Time) *types.Metric {
	t.Helper()
	data, err := typeurl.MarshalAnyToProto(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return &types.Metric{ID: "web-1234", Timestamp: timestamppb.New(at), Data: data}
}

// checkStats checks the stats and the OOM kill count read from m.
func checkStats(t *testing.T, m *types.Metric, want *Stats, kills uint64) {
	t.Helper()
	got, err := statsFromMetric(m)
	if err != nil {
		t.Fatalf("statsFromMetric: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stats =\n%+v\nwant\n%+v", got, want)
	}
	if n, err := oomKillsFromMetric(m); err != nil || n != kills {
		t.Fatalf("oom kills = %d, %v; want %d", n, err, kills)
	}
}

func TestStatsFromCgroupV1(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	m := metricOf(t, &v1stats.Metrics{
		CPU: &v1stats.CPUStat{
			Usage:      &v1stats.CPUUsage{Total: 9_000, User: 6_000, Kernel: 3_000},
			Throttling: &v1stats.Throttle{Periods: 40, ThrottledPeriods: 4, ThrottledTime: 700},
		},
		Memory: &v1stats.MemoryStat{
			RSS:    1 << 20,
			Cache:  2 << 20,
			Usage:  &v1stats.MemoryEntry{Usage: 4 << 20, Max: 5 << 20},
			Swap:   &v1stats.MemoryEntry{Usage: 6 << 20},
			Kernel: &v1stats.MemoryEntry{Usage: 300},
		},
		MemoryOomControl: &v1stats.MemoryOomControl{OomKill: 2},
	}, at)

	checkStats(t, m, &Stats{
		Timestamp:     at,
		CPUTotalNanos: 9_000, CPUUserNanos: 6_000, CPUSystemNanos: 3_000,
		CPUThrottledPeriods: 4, CPUThrottledNanos: 700,
		MemoryRSS: 1 << 20, MemoryCache: 2 << 20, MemorySwap: 2 << 20,
		MemoryUsage: 4 << 20, MemoryMaxUsage: 5 << 20, MemoryKernelUsage: 300,
		MemoryMeasured: []string{"RSS", "Cache", "Swap", "Usage", "Max Usage", "Kernel Usage"},
	}, 2)
}

func TestStatsFromCgroupV1WithoutSwapAccounting(t *testing.T) {
	got, err := statsFromMetric(metricOf(t, &v1stats.Metrics{
		Memory: &v1stats.MemoryStat{Usage: &v1stats.MemoryEntry{Usage: 4 << 20}},
	}, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if got.MemorySwap != 0 || got.MemoryUsage != 4<<20 {
		t.Fatalf("swap = %d usage = %d", got.MemorySwap, got.MemoryUsage)
	}
}

func TestStatsFromCgroupV2(t *testing.T) {
	at := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	m := metricOf(t, &v2stats.Metrics{
		CPU: &v2stats.CPUStat{
			UsageUsec: 9, UserUsec: 6, SystemUsec: 3,
			NrPeriods: 40, NrThrottled: 4, ThrottledUsec: 7,
		},
		Memory: &v2stats.MemoryStat{
			Anon: 1 << 20, File: 2 << 20, SwapUsage: 3 << 20, Usage: 4 << 20, MaxUsage: 5 << 20,
			KernelStack: 100, Slab: 200,
		},
		MemoryEvents: &v2stats.MemoryEvents{OomKill: 1},
	}, at)

	checkStats(t, m, &Stats{
		Timestamp:     at,
		CPUTotalNanos: 9_000, CPUUserNanos: 6_000, CPUSystemNanos: 3_000,
		CPUThrottledPeriods: 4, CPUThrottledNanos: 7_000,
		MemoryRSS: 1 << 20, MemoryCache: 2 << 20, MemorySwap: 3 << 20,
		MemoryUsage: 4 << 20, MemoryMaxUsage: 5 << 20,
		MemoryMeasured: []string{"RSS", "Cache", "Swap", "Usage", "Max Usage"},
	}, 1)
}

func TestStatsFromCgroupV2WithoutPeak(t *testing.T) {
	got, err := statsFromMetric(metricOf(t, &v2stats.Metrics{
		Memory: &v2stats.MemoryStat{Usage: 4 << 20},
	}, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"RSS", "Cache", "Swap", "Usage"}
	if !reflect.DeepEqual(got.MemoryMeasured, want) {
		t.Fatalf("measured = %v, want %v", got.MemoryMeasured, want)
	}
}

func TestStatsFromMetricErrors(t *testing.T) {
	if _, err := statsFromMetric(nil); err == nil {
		t.Error("nil metric decoded")
	}
	if _, err := statsFromMetric(&types.Metric{}); err == nil {
		t.Error("metric without data decoded")
	}
	if _, err := statsFromMetric(metricOf(t, &specs.LinuxResources{}, time.Now())); err == nil {
		t.Error("metric of an unrelated type decoded")
	}
	if _, err := oomKillsFromMetric(metricOf(t, &v2stats.Metrics{}, time.Now())); err == nil {
		t.Error("oom kill counter read from metrics without memory events")
	}
}
