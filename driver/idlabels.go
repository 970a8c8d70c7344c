package driver

import (
	"context"
	"fmt"

	"github.com/nomad-containerd/nomad-driver-containerd/userns"
)

// restoreLabelledIDs reserves, once per state and before any new
// reservation, the range of every container of the driver that carries
// labelUserNS, for that container. A start waits for it; one that fails
// to list the containers fails, and the next start tries again.
func (d *Driver) restoreLabelledIDs(st *state) error {
	st.labelledIDs.mu.Lock()
	defer st.labelledIDs.mu.Unlock()
	if st.labelledIDs.done {
		return nil
	}
	ctx, cancel := context.WithTimeout(d.ctx, callTimeout)
	defer cancel()
	cs, err := d.listOwned(ctx, st)
	if err != nil {
		return fmt.Errorf("failed to list the host ID ranges of existing containers: %w", err)
	}
	for _, c := range cs {
		v, ok := c.Labels[labelUserNS]
		if !ok {
			continue
		}
		r, err := userns.ParseRange(v)
		if err == nil {
			err = st.ids.Restore(c.ID, r)
		}
		if err != nil {
			d.logger.Error("failed to hold the host IDs of an existing container", "container_id", c.ID, "label", labelUserNS, "error", err)
		}
	}
	st.labelledIDs.done = true
	return nil
}
