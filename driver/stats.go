package driver

import (
	"context"
	"time"

	cstructs "github.com/hashicorp/nomad/client/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

var measuredCPU = []string{"Throttled Periods", "Throttled Time", "Percent", "System Mode", "User Mode", "Total Ticks"}

// TaskStats samples the task's cgroup every interval until ctx ends or the
// task exits. Sampling is periodic by nature: Nomad asks for a rate.
func (d *Driver) TaskStats(ctx context.Context, taskID string, interval time.Duration) (<-chan *drivers.TaskResourceUsage, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	if interval <= 0 {
		st, err := d.current()
		if err != nil {
			return nil, err
		}
		interval = st.config.StatsInterval
	}
	return periodic(ctx, d.ctx, h.task.Done(), interval, func() (*drivers.TaskResourceUsage, bool) {
		usage, err := h.sample(ctx)
		if err != nil {
			h.logger.Debug("failed to sample task stats", "error", err)
		}
		return usage, err == nil
	}), nil
}

// sample reads the task's cgroup once and converts it to Nomad's form.
func (h *taskHandle) sample(ctx context.Context) (*drivers.TaskResourceUsage, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	s, err := h.task.Stats(cctx)
	if err != nil {
		return nil, err
	}
	return h.toUsage(s), nil
}

func (h *taskHandle) toUsage(s *executor.Stats) *drivers.TaskResourceUsage {
	h.statsMu.Lock()
	defer h.statsMu.Unlock()
	total := h.cpuTotal.Percent(float64(s.CPUTotalNanos))
	cpu := &cstructs.CpuStats{
		Percent:          total,
		UserMode:         h.cpuUser.Percent(float64(s.CPUUserNanos)),
		SystemMode:       h.cpuSystem.Percent(float64(s.CPUSystemNanos)),
		TotalTicks:       h.cpuTotal.TicksConsumed(total),
		ThrottledPeriods: s.CPUThrottledPeriods,
		ThrottledTime:    s.CPUThrottledNanos,
		Measured:         measuredCPU,
	}
	mem := &cstructs.MemoryStats{
		RSS:         s.MemoryRSS,
		Cache:       s.MemoryCache,
		Swap:        s.MemorySwap,
		Usage:       s.MemoryUsage,
		MaxUsage:    s.MemoryMaxUsage,
		KernelUsage: s.MemoryKernelUsage,
		Measured:    s.MemoryMeasured,
	}
	ts := s.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	return &drivers.TaskResourceUsage{
		ResourceUsage: &cstructs.ResourceUsage{CpuStats: cpu, MemoryStats: mem},
		Timestamp:     ts.UTC().UnixNano(),
	}
}
