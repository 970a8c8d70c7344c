package driver

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"golang.org/x/sys/unix"
)

// WaitTask delivers the task's exit once to this caller, as soon as
// containerd reports it.
func (d *Driver) WaitTask(ctx context.Context, taskID string) (<-chan *drivers.ExitResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	ch := make(chan *drivers.ExitResult, 1)
	go func() {
		defer close(ch)
		select {
		case <-h.task.Done():
			ch <- exitResult(h.task.Exit())
		case <-ctx.Done():
		case <-d.ctx.Done():
		}
	}()
	return ch, nil
}

// StopTask sends the kill signal, then SIGKILL after timeout. It returns as
// soon as the task has exited.
func (d *Driver) StopTask(taskID string, timeout time.Duration, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	sig, err := parseSignal(signal, syscall.SIGTERM)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(d.ctx, timeout+callTimeout)
	defer cancel()
	if err := h.task.Stop(ctx, sig, timeout); err != nil {
		return fmt.Errorf("failed to stop task %s: %w", taskID, err)
	}
	return nil
}

// DestroyTask removes the task's container, task and snapshot. A running
// task is refused unless force is set.
func (d *Driver) DestroyTask(taskID string, force bool) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	if !force && !h.exited() {
		return fmt.Errorf("cannot destroy running task %s: stop it first or destroy with force", taskID)
	}
	return d.destroy(h, force)
}

// destroy removes the task's process, then its network, then the container
// with its snapshot, and forgets the task. The container record goes last:
// while it exists, its labels say what is left to clean up. Nomad does not
// retry a failed DestroyTask, so a failure keeps the task and arms a retry
// with backoff; a later DestroyTask, the retry or, after a plugin restart,
// the dangling container reconciler finishes the job.
func (d *Driver) destroy(h *taskHandle, force bool) error {
	err := d.destroySteps(h, force)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("failed to destroy task %s: %w", h.cfg.ID, err)
	if !errdefs.IsFailedPrecondition(err) && d.ctx.Err() == nil {
		delay := h.armDestroyRetry(func() { d.retryDestroy(h, force) })
		h.logger.Error("task not fully destroyed; trying again", "error", err, "retry_in", delay)
	}
	return err
}

func (d *Driver) destroySteps(h *taskHandle, force bool) error {
	h.destroyMu.Lock()
	defer h.destroyMu.Unlock()
	if cur, ok := d.tasks.Get(h.cfg.ID); !ok || cur != h {
		return nil // destroyed meanwhile
	}
	st, err := d.current()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(d.ctx, callTimeout)
	defer cancel()
	if err := h.task.DeleteProcess(ctx, force); err != nil {
		return err
	}
	if a := h.state.Network; a != nil {
		if err := d.teardownNetwork(st, *a); err != nil {
			return err
		}
	}
	if err := h.task.Delete(ctx, force); err != nil {
		return err
	}
	if h.logs != nil {
		h.logs.Stop(true) // the shim is gone: the spools hold all there is
	}
	h.stopDestroyRetry()
	st.gc.Release(h.state.ImageRef)
	if h.state.UserNS != nil {
		st.ids.Release(h.state.ContainerID)
	}
	d.tasks.Delete(h.cfg.ID)
	return nil
}

// retryDestroy is a retry armed by a failed destroy. After Shutdown none
// is armed and an armed one does nothing: the next plugin's reconciler
// takes the container.
func (d *Driver) retryDestroy(h *taskHandle, force bool) {
	if d.ctx.Err() != nil {
		return
	}
	if err := d.destroy(h, force); err == nil {
		h.logger.Info("destroyed task on retry")
	}
}

// InspectTask reports the task's state and driver attributes.
func (d *Driver) InspectTask(taskID string) (*drivers.TaskStatus, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h.status(), nil
}

// SignalTask delivers a signal to the task's main process.
func (d *Driver) SignalTask(taskID string, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	sig, err := parseSignal(signal, 0)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(d.ctx, callTimeout)
	defer cancel()
	if err := h.task.Signal(ctx, sig); err != nil {
		return fmt.Errorf("failed to signal task %s: %w", taskID, err)
	}
	return nil
}

// parseSignal accepts "SIGTERM", "TERM" or "15"; "" means def.
func parseSignal(name string, def syscall.Signal) (syscall.Signal, error) {
	if name == "" {
		if def == 0 {
			return 0, fmt.Errorf("signal: an empty name is not a signal")
		}
		return def, nil
	}
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if s := unix.SignalNum(n); s != 0 {
		return s, nil
	}
	var num int
	if _, err := fmt.Sscanf(name, "%d", &num); err == nil && num > 0 && num < 65 {
		return syscall.Signal(num), nil
	}
	return 0, fmt.Errorf("signal: %q is not a signal name such as SIGTERM or SIGHUP", name)
}
