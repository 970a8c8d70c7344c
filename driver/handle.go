package driver

import (
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/client/lib/cpustats"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// taskHandle is the driver's view of one running (or exited) task.
type taskHandle struct {
	cfg    *drivers.TaskConfig
	task   *executor.Task
	state  TaskState
	logger hclog.Logger

	statsMu   sync.Mutex
	cpuTotal  *cpustats.Tracker
	cpuUser   *cpustats.Tracker
	cpuSystem *cpustats.Tracker
}

func newHandle(cfg *drivers.TaskConfig, task *executor.Task, st TaskState, compute cpustats.Compute, logger hclog.Logger) *taskHandle {
	return &taskHandle{
		cfg:       cfg,
		task:      task,
		state:     st,
		logger:    logger.With("task_id", cfg.ID, "container_id", st.ContainerID),
		cpuTotal:  cpustats.New(compute),
		cpuUser:   cpustats.New(compute),
		cpuSystem: cpustats.New(compute),
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
