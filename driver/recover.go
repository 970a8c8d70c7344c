package driver

import (
	"context"
	"fmt"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// RecoverTask reattaches to a task after the plugin or the Nomad agent
// restarted. The task is never started again: a task that exited meanwhile
// reports its real exit through WaitTask.
func (d *Driver) RecoverTask(handle *drivers.TaskHandle) error {
	if handle == nil || handle.Config == nil {
		return fmt.Errorf("failed to recover task: no task handle")
	}
	if _, ok := d.tasks.Get(handle.Config.ID); ok {
		return nil
	}
	ts, err := decodeState(handle)
	if err != nil {
		return fmt.Errorf("failed to recover task %s: %w", handle.Config.ID, err)
	}
	st, err := d.current()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(d.ctx, callTimeout)
	defer cancel()
	task, err := st.runtime.Load(ctx, ts.ContainerID)
	if err != nil {
		return fmt.Errorf("failed to recover task %s (container %s): %w", handle.Config.ID, ts.ContainerID, err)
	}
	h := newHandle(handle.Config, task, ts, st.compute, d.logger)
	d.tasks.Set(handle.Config.ID, h)
	h.logger.Info("recovered task", "pid", task.PID())
	return nil
}
