package executor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
)

const (
	// Reconnection backoff after containerd went away; grpc itself also
	// waits for the connection to become ready before a call goes out.
	reconnectBackoffMin = 100 * time.Millisecond
	reconnectBackoffMax = 5 * time.Second

	// oomCheckTimeout bounds the cgroup counter lookup made at exit.
	oomCheckTimeout = 5 * time.Second
)

// ExitStatus is how a task's process ended.
type ExitStatus struct {
	// Code is the exit code as containerd reports it (128+n for signal n).
	Code int
	// Signal is the signal that killed the process, 0 if it exited.
	Signal int
	// OOMKilled is set when the kernel OOM killer killed a process of the
	// container.
	OOMKilled bool
	ExitedAt  time.Time
	// Err is set when the exit could not be observed, e.g. the task was
	// deleted first; Code is then containerd's unknown exit status.
	Err error
}

// lostExit is the exit of a task containerd no longer has. containerd keeps
// a stopped task's status until the task is deleted, except across its own
// restart: a shim whose processes all exited while containerd was down is
// removed with the status as it starts again.
func lostExit(id string, err error) ExitStatus {
	return ExitStatus{
		Code: int(client.UnknownExitStatus),
		Err: fmt.Errorf("exit status unknown: containerd no longer has task %s (it exited while containerd was down, "+
			"which discards its status, or it was removed outside Nomad): %w", id, err),
	}
}

func exitFromCode(code uint32, at time.Time, oom bool) ExitStatus {
	es := ExitStatus{Code: int(code), ExitedAt: at, OOMKilled: oom}
	if code > 128 && code-128 <= 64 {
		es.Signal = int(code - 128)
	}
	return es
}

// recordExit stores the first exit it is given, closes Done and stops the
// watchers; later calls do nothing.
func (t *Task) recordExit(es ExitStatus) {
	t.exitOnce.Do(func() {
		t.mu.Lock()
		t.exit = es
		t.mu.Unlock()
		close(t.done)
		t.stopWatch()
		t.logger.Debug("task exited", "exit_code", es.Code, "signal", es.Signal, "oom_killed", es.OOMKilled, "error", es.Err)
	})
}

func (t *Task) oomSeen() bool {
	select {
	case <-t.oomObserved:
		return true
	default:
		return false
	}
}

func (t *Task) markOOM() {
	t.oomOnce.Do(func() {
		close(t.oomObserved)
		t.logger.Info("task was oom killed")
	})
}

// startWatch starts the exit watcher once.
func (t *Task) startWatch() {
	t.watchOnce.Do(func() { go t.watchExit() })
}

// watchExit waits on containerd for the task's exit. When the wait breaks
// because containerd went away, it waits for the connection to come back and
// waits again; containerd keeps a stopped task's status until it is deleted,
// so an exit that happened meanwhile is still reported with its real code.
func (t *Task) watchExit() {
	ctx := t.watchCtx
	backoff := reconnectBackoffMin
	for {
		began := time.Now()
		resp, err := t.rt.client.TaskService().Wait(ctx, &tasksapi.WaitRequest{ContainerID: t.id}, grpc.WaitForReady(true))
		if err == nil {
			t.recordExit(exitFromCode(resp.ExitStatus, resp.ExitedAt.AsTime(), t.oomAtExit()))
			return
		}
		if ctx.Err() != nil {
			return
		}
		err = errgrpc.ToNative(err)
		if errdefs.IsNotFound(err) {
			t.recordExit(lostExit(t.id, err))
			return
		}
		if time.Since(began) > reconnectBackoffMax {
			backoff = reconnectBackoffMin
		}
		t.logger.Warn("lost the wait on the task, waiting for containerd", "error", err, "retry_in", backoff)
		if !t.rt.awaitReconnect(ctx, &backoff) {
			return
		}
	}
}

// oomAtExit tells whether the task was OOM killed: from the OOM event when it
// arrived, else from the cgroup's oom_kill counter, which the kernel bumps
// before the killed process is reaped (the OOM event and the exit travel
// separately and the event may come second). The counter is read from the
// cgroup file found when the task was created; a task reattached to, or
// one whose file cannot be read, has it read through containerd's metrics.
func (t *Task) oomAtExit() bool {
	if t.oomSeen() {
		return true
	}
	kills, err := t.oomKills()
	if err != nil {
		t.logger.Debug("no oom kill counter at exit", "error", err)
		return false
	}
	if kills > 0 {
		t.markOOM()
		return true
	}
	return false
}

func (t *Task) oomKills() (uint64, error) {
	if t.oomFile != "" {
		kills, err := readOOMKills(t.oomFile)
		if err == nil {
			return kills, nil
		}
		t.logger.Debug("failed to read the oom kill counter, asking containerd", "file", t.oomFile, "error", err)
	}
	ctx, cancel := context.WithTimeout(t.rt.withNS(context.WithoutCancel(t.watchCtx)), oomCheckTimeout)
	defer cancel()
	m, err := t.task.Metrics(ctx)
	if err != nil {
		return 0, fmt.Errorf("no cgroup metrics: %w", err)
	}
	return oomKillsFromMetric(m)
}

// subscribeOOM opens the OOM event subscription once (the stream is opened
// before it returns, so before a process starts) and keeps it open in the
// background until the exit is known, re-subscribing when containerd comes
// back. A subscription that fails is retried in the background too.
func (t *Task) subscribeOOM() {
	first := false
	t.subscribeOnce.Do(func() { first = true })
	if !first {
		return
	}
	filter := fmt.Sprintf("namespace==%s,topic==%s,event.container_id==%s",
		strconv.Quote(t.rt.namespace), strconv.Quote(runtime.TaskOOMEventTopic), strconv.Quote(t.id))
	errs := t.receiveOOM(filter)
	go func() {
		backoff := reconnectBackoffMin
		for {
			began := time.Now()
			select {
			case <-t.watchCtx.Done():
				return
			case err := <-errs:
				if t.watchCtx.Err() != nil {
					return
				}
				if time.Since(began) > reconnectBackoffMax {
					backoff = reconnectBackoffMin
				}
				t.logger.Warn("lost the oom event subscription, waiting for containerd", "error", err, "retry_in", backoff)
				if !t.rt.awaitReconnect(t.watchCtx, &backoff) {
					return
				}
				errs = t.receiveOOM(filter)
			}
		}
	}()
}

// receiveOOM subscribes once and marks the task OOM killed on any matching
// event. The returned channel carries the error that ends the subscription.
func (t *Task) receiveOOM(filter string) <-chan error {
	ctx, cancel := context.WithCancel(t.watchCtx)
	events, errs := t.rt.client.Subscribe(ctx, filter)
	failed := make(chan error, 1)
	go func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				if ev != nil && ev.Topic == runtime.TaskOOMEventTopic {
					t.markOOM()
				}
			case err, ok := <-errs:
				if !ok {
					err = errors.New("event stream closed")
				}
				failed <- err
				return
			}
		}
	}()
	return failed
}

// awaitReconnect waits out the backoff, doubling it up to its maximum, then
// blocks until containerd answers its health service again. It returns false
// when ctx ends first.
func (r *Runtime) awaitReconnect(ctx context.Context, backoff *time.Duration) bool {
	timer := time.NewTimer(*backoff)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
	}
	*backoff = nextBackoff(*backoff)
	if _, err := r.client.IsServing(ctx); err != nil {
		return ctx.Err() == nil
	}
	return true
}

func nextBackoff(d time.Duration) time.Duration {
	return min(d*2, reconnectBackoffMax)
}
