package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/typeurl/v2"
)

// Memory statistic names as Nomad reports them.
const (
	MemoryRSS         = "RSS"
	MemoryCache       = "Cache"
	MemorySwap        = "Swap"
	MemoryUsage       = "Usage"
	MemoryMaxUsage    = "Max Usage"
	MemoryKernelUsage = "Kernel Usage"
)

// Stats is one sample of a task's cgroup resource usage.
type Stats struct {
	Timestamp time.Time

	CPUTotalNanos, CPUUserNanos, CPUSystemNanos uint64
	CPUThrottledPeriods, CPUThrottledNanos      uint64

	MemoryRSS, MemoryCache, MemorySwap, MemoryUsage, MemoryMaxUsage, MemoryKernelUsage uint64
	// MemoryMeasured names the memory fields the cgroup version provides.
	MemoryMeasured []string
}

// Stats samples the task's cgroup (v1 or v2) through containerd.
func (t *Task) Stats(ctx context.Context) (*Stats, error) {
	m, err := t.task.Metrics(t.rt.withNS(ctx))
	if err != nil {
		return nil, fmt.Errorf("failed to get task metrics: %w", err)
	}
	s, err := statsFromMetric(m)
	if err != nil {
		return nil, fmt.Errorf("failed to decode task metrics: %w", err)
	}
	return s, nil
}

func decodeMetric(m *types.Metric) (any, error) {
	if m == nil || m.Data == nil {
		return nil, errors.New("no metrics data")
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return nil, err
	}
	switch v.(type) {
	case *stats.Metrics, *v2stats.Metrics:
		return v, nil
	}
	return nil, fmt.Errorf("unsupported metrics type %T", v)
}

func statsFromMetric(m *types.Metric) (*Stats, error) {
	v, err := decodeMetric(m)
	if err != nil {
		return nil, err
	}
	var s *Stats
	switch metrics := v.(type) {
	case *stats.Metrics:
		s = statsFromV1(metrics)
	case *v2stats.Metrics:
		s = statsFromV2(metrics)
	}
	if m.Timestamp != nil {
		s.Timestamp = m.Timestamp.AsTime()
	} else {
		s.Timestamp = time.Now()
	}
	return s, nil
}

func statsFromV1(m *stats.Metrics) *Stats {
	s := &Stats{}
	if cpu := m.GetCPU(); cpu != nil {
		s.CPUTotalNanos = cpu.GetUsage().GetTotal()
		s.CPUUserNanos = cpu.GetUsage().GetUser()
		s.CPUSystemNanos = cpu.GetUsage().GetKernel()
		s.CPUThrottledPeriods = cpu.GetThrottling().GetThrottledPeriods()
		s.CPUThrottledNanos = cpu.GetThrottling().GetThrottledTime()
	}
	if mem := m.GetMemory(); mem != nil {
		s.MemoryRSS = mem.GetRSS()
		s.MemoryCache = mem.GetCache()
		s.MemoryUsage = mem.GetUsage().GetUsage()
		s.MemoryMaxUsage = mem.GetUsage().GetMax()
		s.MemoryKernelUsage = mem.GetKernel().GetUsage()
		// memsw counts memory plus swap.
		if sw := mem.GetSwap().GetUsage(); sw > s.MemoryUsage {
			s.MemorySwap = sw - s.MemoryUsage
		}
		s.MemoryMeasured = []string{MemoryRSS, MemoryCache, MemorySwap, MemoryUsage, MemoryMaxUsage, MemoryKernelUsage}
	}
	return s
}

func statsFromV2(m *v2stats.Metrics) *Stats {
	s := &Stats{}
	if cpu := m.GetCPU(); cpu != nil {
		s.CPUTotalNanos = cpu.GetUsageUsec() * 1000
		s.CPUUserNanos = cpu.GetUserUsec() * 1000
		s.CPUSystemNanos = cpu.GetSystemUsec() * 1000
		s.CPUThrottledPeriods = cpu.GetNrThrottled()
		s.CPUThrottledNanos = cpu.GetThrottledUsec() * 1000
	}
	if mem := m.GetMemory(); mem != nil {
		s.MemoryRSS = mem.GetAnon()
		s.MemoryCache = mem.GetFile()
		s.MemorySwap = mem.GetSwapUsage()
		s.MemoryUsage = mem.GetUsage()
		// v2 has no single kernel memory counter: Kernel Usage is not measured.
		s.MemoryMeasured = []string{MemoryRSS, MemoryCache, MemorySwap, MemoryUsage}
		// memory.peak exists from Linux 5.19 on.
		if peak := mem.GetMaxUsage(); peak > 0 {
			s.MemoryMaxUsage = peak
			s.MemoryMeasured = append(s.MemoryMeasured, MemoryMaxUsage)
		}
	}
	return s
}

// oomKillsFromMetric returns the cgroup's count of OOM kills.
func oomKillsFromMetric(m *types.Metric) (uint64, error) {
	v, err := decodeMetric(m)
	if err != nil {
		return 0, err
	}
	switch metrics := v.(type) {
	case *stats.Metrics:
		if oc := metrics.GetMemoryOomControl(); oc != nil {
			return oc.GetOomKill(), nil
		}
	case *v2stats.Metrics:
		if ev := metrics.GetMemoryEvents(); ev != nil {
			return ev.GetOomKill(), nil
		}
	}
	return 0, errors.New("metrics carry no oom kill counter")
}
