package driver

import (
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-containerd/nomad-driver-containerd/userns"
)

// The host IDs that tasks' user namespaces are mapped onto: 4096 ranges of
// 65536 IDs from 2^31, far above the IDs of the host's users and the
// subordinate ranges that /etc/subuid hands out from 100000.
const (
	defaultIDRangeStart uint32 = 1 << 31
	defaultIDRangeCount uint32 = 4096 * userns.Size
)

// newIDPool is the pool of host ID ranges for a (new) plugin config; the
// ranges that live tasks hold in old, the previous config's pool, stay
// theirs.
func newIDPool(start, count uint32, old *userns.Pool, logger hclog.Logger) (*userns.Pool, error) {
	p, err := userns.NewPool(start, count)
	if err != nil {
		return nil, fmt.Errorf("invalid plugin config: userns.%w", err)
	}
	if old == nil {
		return p, nil
	}
	for _, o := range old.Live() {
		if err := p.Restore(o.Owner, o.Range); err != nil {
			logger.Error("failed to carry a task's host IDs over to the new config", "container_id", o.Owner, "error", err)
		}
	}
	return p, nil
}

// restoreIDs records the host IDs a recovered task's state holds.
func restoreIDs(p *userns.Pool, ts TaskState) error {
	if ts.UserNS == nil {
		return nil
	}
	if err := p.Restore(ts.ContainerID, *ts.UserNS); err != nil {
		return fmt.Errorf("failed to recover the task's user namespace: %w", err)
	}
	return nil
}
