package executor

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// loadAttemptTimeout bounds one Load while containerd is expected back.
const loadAttemptTimeout = 30 * time.Second

// Recover is Load that waits out containerd being unreachable (a daemon
// restart) until ctx ends: it waits for containerd to answer again and
// loads once more. Any other error, such as the container or its task being
// gone (errdefs.ErrNotFound), returns at once.
func (r *Runtime) Recover(ctx context.Context, id string) (*Task, error) {
	backoff := reconnectBackoffMin
	for {
		actx, cancel := context.WithTimeout(ctx, loadAttemptTimeout)
		t, err := r.Load(actx, id)
		cancel()
		if err == nil || !Unreachable(err) {
			return t, err
		}
		r.logger.Warn("containerd is not answering, waiting to load the task", "container_id", id, "error", err, "retry_in", backoff)
		if !r.awaitReconnect(ctx, &backoff) {
			return nil, fmt.Errorf("%w (gave up waiting for containerd: %w)", err, context.Cause(ctx))
		}
	}
}

// Unreachable tells whether err says containerd could not be reached or did
// not answer in time, rather than answering that something is wrong.
func Unreachable(err error) bool {
	return errdefs.IsUnavailable(err) || errdefs.IsDeadlineExceeded(err) || errors.Is(err, context.DeadlineExceeded)
}

// Purge removes whatever is left of container id: its task (killed first),
// the container, and its rootfs snapshot in snapshotter even when the
// container itself is already gone ("" is containerd's default). Nothing
// left is success.
func (r *Runtime) Purge(ctx context.Context, id, snapshotter string) error {
	if snapshotter == "" {
		snapshotter = defaults.DefaultSnapshotter
	}
	return r.remove(r.withNS(ctx), id, snapshotter)
}

// goneTask stands in for the task of a container whose task containerd no
// longer has: every call the executor makes on a task answers not found.
type goneTask struct {
	client.Task // not called: the executor's calls are all below
	id          string
}

func (g goneTask) notFound() error {
	return fmt.Errorf("task %s: %w", g.id, errdefs.ErrNotFound)
}

func (g goneTask) Pid() uint32                 { return 0 }
func (g goneTask) Start(context.Context) error { return g.notFound() }
func (g goneTask) Status(context.Context) (client.Status, error) {
	return client.Status{}, g.notFound()
}
func (g goneTask) Kill(context.Context, syscall.Signal, ...client.KillOpts) error {
	return g.notFound()
}
func (g goneTask) Delete(context.Context, ...client.ProcessDeleteOpts) (*client.ExitStatus, error) {
	return nil, g.notFound()
}
func (g goneTask) Metrics(context.Context) (*types.Metric, error) { return nil, g.notFound() }
func (g goneTask) Exec(context.Context, string, *specs.Process, cio.Creator) (client.Process, error) {
	return nil, g.notFound()
}
