package executor

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
)

// Task is a container with its containerd task.
type Task struct {
	rt        *Runtime
	id        string
	container client.Container
	task      client.Task
	logger    hclog.Logger
	// oomFile holds the oom_kill counter of the task's memory cgroup ("":
	// unknown, ask containerd's metrics); see oomCounterFile.
	oomFile string

	// watchCtx lives as long as the exit is unknown and the task exists; the
	// exit and OOM watchers run under it.
	watchCtx      context.Context
	stopWatch     context.CancelFunc
	watchOnce     sync.Once
	subscribeOnce sync.Once
	oomOnce       sync.Once
	oomObserved   chan struct{}

	exitOnce sync.Once
	done     chan struct{}
	mu       sync.Mutex
	exit     ExitStatus
}

func newTask(r *Runtime, id string, container client.Container, task client.Task) *Task {
	ctx, cancel := context.WithCancel(r.withNS(context.Background()))
	return &Task{
		rt:          r,
		id:          id,
		container:   container,
		task:        task,
		logger:      r.logger.With("container_id", id),
		watchCtx:    ctx,
		stopWatch:   cancel,
		oomObserved: make(chan struct{}),
		done:        make(chan struct{}),
	}
}

// ID is the container (and task) ID.
func (t *Task) ID() string { return t.id }

// PID is the host PID of the task's init process.
func (t *Task) PID() uint32 { return t.task.Pid() }

// Done is closed once, when the task's exit is known.
func (t *Task) Done() <-chan struct{} { return t.done }

// Exit is the task's exit status; valid once Done is closed.
func (t *Task) Exit() ExitStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exit
}

// Start starts the task's process and the watcher of its exit. The OOM
// subscription is in place before the process runs.
func (t *Task) Start(ctx context.Context) error {
	ctx = t.rt.withNS(ctx)
	t.subscribeOOM()
	if err := t.task.Start(ctx); err != nil {
		return fmt.Errorf("failed to start task: %w", err)
	}
	t.startWatch()
	t.logger.Debug("started task", "pid", t.task.Pid())
	return nil
}

// Signal sends sig to the task's init process.
func (t *Task) Signal(ctx context.Context, sig syscall.Signal) error {
	if err := t.task.Kill(t.rt.withNS(ctx), sig); err != nil {
		return fmt.Errorf("failed to signal task: %w", err)
	}
	return nil
}

// Stop sends sig and waits up to timeout for the task to exit, then sends
// SIGKILL to all its processes and waits for the exit. It returns as soon as
// the task has exited; a task that already exited is success.
func (t *Task) Stop(ctx context.Context, sig syscall.Signal, timeout time.Duration) error {
	ctx = t.rt.withNS(ctx)
	t.startWatch()
	select {
	case <-t.done:
		return nil
	default:
	}
	if err := t.task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("failed to signal task: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("failed to stop task: %w", ctx.Err())
	case <-timer.C:
	}
	t.logger.Debug("task did not exit in time, killing it", "timeout", timeout, "signal", sig)
	if err := t.task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("failed to kill task: %w", err)
	}
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("task did not exit after SIGKILL: %w", ctx.Err())
	}
}

// Running reports whether the task's process is running (or paused). A task
// that is gone is not running.
func (t *Task) Running(ctx context.Context) (bool, error) {
	st, err := t.task.Status(t.rt.withNS(ctx))
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to get task status: %w", err)
	}
	switch st.Status {
	case client.Running, client.Paused, client.Pausing:
		return true, nil
	}
	return false, nil
}

// DeleteProcess removes the task's process (its containerd task) and keeps
// the container, so that what the container's labels describe can still be
// cleaned up when a later step fails. A running task is killed first when
// force is set, and refused otherwise. A task that is already gone is
// success.
func (t *Task) DeleteProcess(ctx context.Context, force bool) error {
	ctx = t.rt.withNS(ctx)
	st, err := t.task.Status(ctx)
	switch {
	case errdefs.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("failed to get task status: %w", err)
	}
	return t.deleteTask(ctx, st.Status, force)
}

// Delete removes the task, then the container with its snapshot. A running
// task is killed first when force is set, and refused otherwise. Deleting what
// is already gone is success.
func (t *Task) Delete(ctx context.Context, force bool) error {
	if err := t.DeleteProcess(ctx, force); err != nil {
		return err
	}
	ctx = t.rt.withNS(ctx)
	if err := deleteContainer(ctx, t.container); err != nil {
		return err
	}
	t.recordExit(ExitStatus{
		Code: int(client.UnknownExitStatus),
		Err:  fmt.Errorf("task %s was deleted before its exit was observed: %w", t.id, errdefs.ErrNotFound),
	})
	t.logger.Debug("deleted container")
	return nil
}

func (t *Task) deleteTask(ctx context.Context, status client.ProcessStatus, force bool) error {
	var opts []client.ProcessDeleteOpts
	switch status {
	case client.Running, client.Paused, client.Pausing:
		if !force {
			return fmt.Errorf("task %s is %s: %w", t.id, status, errdefs.ErrFailedPrecondition)
		}
		// Let the watcher record the exit (with OOM details) first.
		t.startWatch()
		if err := t.task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("failed to kill task: %w", err)
		}
		select {
		case <-t.done:
		case <-ctx.Done():
			return fmt.Errorf("task did not exit after SIGKILL: %w", ctx.Err())
		}
	case client.Created:
		// A created task has a runtime process waiting to exec the command.
		opts = append(opts, client.WithProcessKill)
	}
	// An exit nobody recorded yet is taken from the delete, with the OOM
	// counter read while the cgroup still exists.
	oom := false
	select {
	case <-t.done:
	default:
		if status == client.Stopped {
			oom = t.oomAtExit()
		}
	}
	es, err := t.task.Delete(ctx, opts...)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("failed to delete task: %w", err)
	}
	if es != nil && status == client.Stopped {
		t.recordExit(exitFromCode(es.ExitCode(), es.ExitTime(), oom))
	}
	return nil
}
