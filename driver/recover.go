package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// RecoverTask reattaches to a task after the plugin or the Nomad agent
// restarted. The task is never started again: a task that exited meanwhile
// reports its real exit through WaitTask (or an unknown one, with an error
// that says why, when containerd discarded it). While containerd does not
// answer, recovery waits for it (recoverTimeout). A task whose container is
// gone fails to recover, and what is left of it (snapshot, network) is
// removed first; Nomad then destroys the task (ErrTaskNotFound: nothing is
// left) and decides whether to run it again.
func (d *Driver) RecoverTask(handle *drivers.TaskHandle) error {
	if handle == nil || handle.Config == nil {
		return fmt.Errorf("failed to recover task: no task handle")
	}
	if _, ok := d.tasks.Get(handle.Config.ID); ok {
		return nil
	}
	ts, err := decodeState(handle)
	if err != nil {
		// a task this plugin cannot read is left as it is, by the dangling
		// container reconciler too
		d.tasks.Hold(containerID(handle.Config.Name, handle.Config.AllocID))
		return fmt.Errorf("failed to recover task %s: %w", handle.Config.ID, err)
	}
	st, err := d.current()
	if err != nil {
		return err
	}
	// reserved first: the dangling container reconciler keeps off it
	if err := d.tasks.Reserve(handle.Config.ID, ts.ContainerID); err != nil {
		return fmt.Errorf("failed to recover task %s: %w", handle.Config.ID, err)
	}
	if ts.PullOnly {
		// it exited 0 when its pull ended and left nothing to reattach to
		d.tasks.Set(handle.Config.ID, newHandle(handle.Config, newPulled(ts.ContainerID, ts.StartedAt), ts, d.logger))
		return nil
	}
	// its host IDs are nobody else's, even while its container cannot be
	// reached: a range is freed only when the task is gone
	if err := restoreIDs(st.ids, ts); err != nil {
		d.tasks.Delete(handle.Config.ID)
		return fmt.Errorf("failed to recover task %s: %w", handle.Config.ID, err)
	}
	// the task's container is in the namespace it was started in, which
	// the plugin's namespace setting may no longer name
	rt := d.runtimeIn(st, ts.Namespace)
	task, err := d.loadTask(rt, ts.ContainerID)
	if errdefs.IsNotFound(err) {
		err = fmt.Errorf("container %s is gone: %w", ts.ContainerID, err)
		if cerr := d.removeLost(st, rt, ts); cerr != nil {
			err = errors.Join(err, cerr)
		}
		d.tasks.Delete(handle.Config.ID)
		return fmt.Errorf("failed to recover task %s: %w", handle.Config.ID, err)
	}
	if err != nil {
		d.tasks.Delete(handle.Config.ID)
		return fmt.Errorf("failed to recover task %s (container %s): %w", handle.Config.ID, ts.ContainerID, err)
	}
	h := newHandle(handle.Config, task, ts, d.logger)
	if ts.Logs != nil {
		// the task runs on whatever happens to its logs: the spools keep
		// the output for a later collector
		lt, err := d.logs.start(d.logger, handle.Config, *ts.Logs, false)
		if err != nil {
			h.logger.Error("failed to resume collecting the task's logs", "error", err)
		} else {
			lt.Release()
			h.logs = lt
		}
	}
	d.tasks.Set(handle.Config.ID, h)
	h.logger.Info("recovered task", "pid", task.PID())
	return nil
}

// loadTask loads the task's container; while containerd does not answer it
// waits for it, within the recovery window.
func (d *Driver) loadTask(rt *executor.Runtime, id string) (*executor.Task, error) {
	ctx, cancel := context.WithTimeout(d.ctx, callTimeout)
	task, err := rt.Load(ctx, id)
	cancel()
	if err == nil || !executor.Unreachable(err) {
		d.recovery.reached()
		return task, err
	}
	deadline := d.recovery.wait(time.Now())
	d.logger.Warn("containerd is not answering; waiting for it to recover the task", "container_id", id, "until", deadline, "error", err)
	ctx, cancel = context.WithDeadline(d.ctx, deadline)
	defer cancel()
	task, err = rt.Recover(ctx, id)
	if err == nil || !executor.Unreachable(err) {
		d.recovery.reached()
	}
	return task, err
}

// removeLost removes what is left of a task whose container or task is gone
// (its container, snapshot and network) and releases its image.
func (d *Driver) removeLost(st *state, rt *executor.Runtime, ts TaskState) error {
	ctx, cancel := context.WithTimeout(d.ctx, callTimeout)
	defer cancel()
	var errs []error
	if err := rt.Purge(ctx, ts.ContainerID, st.config.Snapshotter); err != nil {
		errs = append(errs, err)
	}
	if ts.Network != nil {
		if err := d.teardownNetwork(st, *ts.Network); err != nil {
			errs = append(errs, err)
		}
	}
	if inConfiguredNamespace(st, ts.Namespace) {
		st.gc.Release(ts.ImageRef)
	}
	st.ids.Release(ts.ContainerID)
	d.logger.Warn("removed what was left of a task whose container is gone", "container_id", ts.ContainerID, "errors", len(errs))
	return errors.Join(errs...)
}
