package driver

import (
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/helper/stats"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	tasklogs "github.com/nomad-containerd/nomad-driver-containerd/logs"
)

// taskHandle is the driver's view of one running (or exited) task.
type taskHandle struct {
	cfg    *drivers.TaskConfig
	task   process
	state  TaskState
	logger hclog.Logger
	// logs is the driver's collection of the task's output; nil when
	// Nomad's logmon collects it.
	logs *tasklogs.Task

	statsMu   sync.Mutex
	cpuTotal  *stats.CpuStats
	cpuUser   *stats.CpuStats
	cpuSystem *stats.CpuStats

	destroyMu  sync.Mutex // one destroy at a time: Nomad's and the retries
	retryMu    sync.Mutex
	retryTimer *time.Timer // armed retry of a failed destroy
	retryDelay time.Duration
}

// Backoff of the retries of a failed destroy.
const (
	destroyRetryMin = 2 * time.Second
	destroyRetryMax = 5 * time.Minute
)

// armDestroyRetry arms f after a backoff that doubles with each failure,
// unless a retry is armed already, and returns the delay.
func (h *taskHandle) armDestroyRetry(f func()) time.Duration {
	h.retryMu.Lock()
	defer h.retryMu.Unlock()
	if h.retryTimer != nil {
		return h.retryDelay
	}
	h.retryDelay = min(max(2*h.retryDelay, destroyRetryMin), destroyRetryMax)
	h.retryTimer = time.AfterFunc(h.retryDelay, func() {
		h.retryMu.Lock()
		h.retryTimer = nil
		h.retryMu.Unlock()
		f()
	})
	return h.retryDelay
}

// stopDestroyRetry disarms a pending retry once the destroy succeeded.
func (h *taskHandle) stopDestroyRetry() {
	h.retryMu.Lock()
	defer h.retryMu.Unlock()
	if h.retryTimer != nil {
		h.retryTimer.Stop()
		h.retryTimer = nil
	}
}

func newHandle(cfg *drivers.TaskConfig, task process, st TaskState, logger hclog.Logger) *taskHandle {
	return &taskHandle{
		cfg:       cfg,
		task:      task,
		state:     st,
		logger:    logger.With("task_id", cfg.ID, "container_id", st.ContainerID),
		cpuTotal:  newCPUStats(),
		cpuUser:   newCPUStats(),
		cpuSystem: newCPUStats(),
	}
}

// exited reports whether the task's exit is known.
func (h *taskHandle) exited() bool {
	select {
	case <-h.task.Done():
		return true
	default:
		return false
	}
}

// exitResult converts the executor's exit into Nomad's form.
func exitResult(e executor.ExitStatus) *drivers.ExitResult {
	return &drivers.ExitResult{ExitCode: e.Code, Signal: e.Signal, OOMKilled: e.OOMKilled, Err: e.Err}
}

func (h *taskHandle) status() *drivers.TaskStatus {
	st := &drivers.TaskStatus{
		ID:        h.cfg.ID,
		Name:      h.cfg.Name,
		State:     drivers.TaskStateRunning,
		StartedAt: h.state.StartedAt,
		DriverAttributes: map[string]string{
			"container_id": h.state.ContainerID,
			"namespace":    h.state.Namespace,
			"image":        h.state.ImageRef,
			"image_digest": h.state.ImageDigest,
			"pid":          strconv.FormatUint(uint64(h.task.PID()), 10),
		},
	}
	if h.exited() {
		e := h.task.Exit()
		st.State = drivers.TaskStateExited
		st.CompletedAt = e.ExitedAt
		if st.CompletedAt.IsZero() {
			st.CompletedAt = time.Now()
		}
		st.ExitResult = exitResult(e)
	}
	return st
}

// driverNetwork is the address and ports Nomad advertises for a task on a
// driver-run CNI network; nil in the other modes.
func (h *taskHandle) driverNetwork() *drivers.DriverNetwork {
	a := h.state.Network
	if a == nil {
		return nil
	}
	return &drivers.DriverNetwork{IP: a.IP, PortMap: h.state.PortMap, AutoAdvertise: true}
}
