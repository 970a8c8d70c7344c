package driver

import (
	"context"
	"fmt"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
)

// removeLeftover clears the way for the task's container: a container with
// its ID that is left over from an earlier start of the same task (the
// plugin died between creating and starting it, or a recovery failed while
// containerd did not answer) is removed with its task, snapshot and
// network. A container with that ID that carries other labels, or that
// another task of this plugin holds, is left alone and the start fails
// with a recoverable error.
func (d *Driver) removeLeftover(st *state, cfg *drivers.TaskConfig, p *plan) error {
	ctx, cancel := context.WithTimeout(d.ctx, callTimeout+networkTimeout)
	defer cancel()
	ctrs, err := st.runtime.Containers(ctx, "id=="+p.containerID)
	if err != nil {
		return structs.NewRecoverableError(fmt.Errorf("failed to look up container %s: %w", p.containerID, err), true)
	}
	for _, c := range ctrs {
		if c.ID != p.containerID {
			continue
		}
		if !leftoverOf(cfg, c.Labels) {
			return structs.NewRecoverableError(fmt.Errorf("container %s exists and is not this task's (labels %s=%q, %s=%q)",
				c.ID, labelAllocID, c.Labels[labelAllocID], labelTask, c.Labels[labelTask]), true)
		}
		if d.tasks.HeldByOther(cfg.ID, c.ID) {
			return structs.NewRecoverableError(fmt.Errorf("container %s is held by another task", c.ID), true)
		}
		if err := d.removeDangling(ctx, st, c); err != nil {
			return structs.NewRecoverableError(fmt.Errorf("failed to remove leftover container %s: %w", c.ID, err), true)
		}
		d.logger.Warn("removed a container left over from an earlier start of the task", "container_id", c.ID, "task_id", cfg.ID, "created", c.CreatedAt)
	}
	return nil
}

// leftoverOf reports whether labels are those the driver puts on the
// containers of task cfg.
func leftoverOf(cfg *drivers.TaskConfig, labels map[string]string) bool {
	return ownedByDriver(labels) && labels[labelAllocID] == cfg.AllocID && labels[labelTask] == cfg.Name
}
