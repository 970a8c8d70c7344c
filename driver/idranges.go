package driver

import (
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-containerd/nomad-driver-containerd/userns"
)

// The host IDs that tasks' user namespaces are mapped onto by default (the
// schema's defaults): 4096 ranges of 65536 IDs from 2^31, far above the IDs
// of the host's users and the subordinate ranges that /etc/subuid hands out
// from 100000.
const (
	defaultIDRangeStart uint32 = 1 << 31
	defaultIDRangeCount uint32 = 4096 * userns.Size
)

// UserNSConfig is the plugin's userns block.
type UserNSConfig struct {
	// Default is the mode of a task that sets no userns_mode.
	Default string
	// RangeStart and RangeCount are the host IDs handed out, 65536 a task.
	RangeStart, RangeCount uint32
}

func parseUserNSConfig(raw rawUserNSConfig) (UserNSConfig, error) {
	c := UserNSConfig{Default: raw.Default}
	if c.Default == "" {
		c.Default = userNSHost
	}
	if err := checkUserNSMode("userns.default", c.Default, false); err != nil {
		return c, err
	}
	start, count := int64(defaultIDRangeStart), int64(defaultIDRangeCount)
	if raw.RangeStart != nil {
		start = *raw.RangeStart
	}
	if raw.RangeCount != nil {
		count = *raw.RangeCount
	}
	if start < 1 || start > 1<<32-2 {
		return c, fmt.Errorf("userns.range_start: %d must be a host ID from 1 to 4294967294 (0 is the host's root)", start)
	}
	if count < 1 || count > 1<<32-1 {
		return c, fmt.Errorf("userns.range_count: %d must be a positive multiple of %d (one task's IDs)", count, userns.Size)
	}
	c.RangeStart, c.RangeCount = uint32(start), uint32(count)
	if _, err := userns.NewPool(c.RangeStart, c.RangeCount); err != nil {
		return c, fmt.Errorf("userns.%w", err)
	}
	return c, nil
}

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

// labelledIDs makes sure that the ranges the containers' labels record
// (labelUserNS) are held in a state's pool before that pool hands out a
// new one.
type labelledIDs struct {
	mu   sync.Mutex
	done bool
}

// ownUserNS says whether a task with this userns_mode runs in a user
// namespace of its own (reserveIDs gives it a range or refuses it).
func ownUserNS(mode string, privileged bool, defaultMode string) bool {
	if mode == "" {
		return defaultMode == userNSAuto && !privileged
	}
	return mode == userNSAuto
}

// User namespace modes: a task in the host's user namespace, or in one of
// its own mapped onto a range of the pool.
const (
	userNSHost = "host"
	userNSAuto = "auto"
)

// checkUserNSMode checks a userns mode option; "" (take the plugin's
// default) only where emptyOK.
func checkUserNSMode(field, mode string, emptyOK bool) error {
	if mode == userNSHost || mode == userNSAuto || (emptyOK && mode == "") {
		return nil
	}
	return fmt.Errorf("%s: %q is not one of %q, %q", field, mode, userNSAuto, userNSHost)
}

// reserveIDs gives the task a range of host IDs when its user namespace
// mode (the plugin's default where the task names none) is "auto"; nil
// for "host". A privileged task runs in the host's: its devices and
// capabilities are the host's (as docker refuses --privileged under its
// remap); one that asks for both is refused.
func reserveIDs(p *userns.Pool, containerID, mode string, privileged bool, defaultMode string) (*userns.Range, error) {
	if mode == "" {
		mode = defaultMode
		if privileged {
			return nil, nil
		}
	}
	if mode != userNSAuto {
		return nil, nil
	}
	if privileged {
		return nil, fmt.Errorf("userns_mode: %q cannot be combined with privileged = true: a privileged task runs in the host's user namespace (userns_mode = %q)", mode, userNSHost)
	}
	r, err := p.Reserve(containerID)
	if err != nil {
		return nil, fmt.Errorf("userns_mode: %q: %w", mode, err)
	}
	return &r, nil
}
