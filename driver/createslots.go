package driver

import (
	"context"
	"fmt"
	"runtime"
)

// maxCreates is how many containers the driver creates at once: sixteen
// per CPU, at least 32. A create is mostly CPU work in containerd, its
// shim and runc (more of it in a user namespace of the task's own: runc
// and the shim spawn processes for the ID-mapped mounts of the root
// filesystem and the binds); a hundred at once on two CPUs share them so
// thinly that the last ones run past callTimeout, although the node gets
// through all of them in about that time. Below the bound nothing waits:
// a burst of twenty starts runs as it would without it.
var maxCreates = max(32, 16*runtime.NumCPU())

// createSlots bounds the containers being created at once, so that a
// create's deadline counts its own work and not its wait behind every
// other start of the node; starts take the slots in the order they ask.
type createSlots chan struct{}

func newCreateSlots(n int) createSlots { return make(createSlots, n) }

// acquire waits for a free slot, or for ctx to end, and returns the
// function that frees the slot.
func (s createSlots) acquire(ctx context.Context) (release func(), err error) {
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("failed to wait for a turn to create the container: %w", ctx.Err())
	}
}
