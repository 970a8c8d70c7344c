package driver

import (
	"fmt"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// warmImage runs a pull_only task: it gets the image as any start does
// (local first unless force_pull, trust rules, progress events) and
// exits 0 at once, without a container, snapshot or network. Disk
// pressure keeps the image for gc.image_delay from now; the delay itself
// begins when the task is destroyed.
func (d *Driver) warmImage(st *state, cfg *drivers.TaskConfig, tc *TaskConfig) (*taskHandle, error) {
	_, info, err := d.pullImage(st, cfg, tc)
	if err != nil {
		return nil, err
	}
	st.gc.Warmed(info.Ref) // disk pressure keeps it for gc.image_delay
	now := time.Now().UTC()
	state := TaskState{
		Version:     taskStateVersion,
		ContainerID: containerID(cfg.Name, cfg.AllocID),
		Namespace:   st.config.Namespace,
		ImageRef:    info.Ref,
		ImageDigest: info.Digest,
		StartedAt:   now,
		PullOnly:    true,
	}
	d.emit(cfg, fmt.Sprintf("Image %s@%s is present (pull_only): no container started", info.Ref, info.Digest),
		map[string]string{"image_digest": info.Digest})
	return newHandle(cfg, newPulled(state.ContainerID, now), state, d.logger), nil
}
