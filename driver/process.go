package driver

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// process is what a task handle drives: a container's task
// (*executor.Task) or, for a pull_only task, the finished pull.
type process interface {
	ID() string
	PID() uint32
	Done() <-chan struct{}
	Exit() executor.ExitStatus
	Stop(ctx context.Context, sig syscall.Signal, timeout time.Duration) error
	Signal(ctx context.Context, sig syscall.Signal) error
	DeleteProcess(ctx context.Context, force bool) error
	Delete(ctx context.Context, force bool) error
	Exec(ctx context.Context, opts executor.ExecOptions) (int, error)
	Stats(ctx context.Context) (*executor.Stats, error)
}

var _ process = (*executor.Task)(nil)

// errNoProcess is what a pull_only task answers to a signal or an exec.
var errNoProcess = errors.New("a pull_only task has no container: it pulled its image and exited")

// pulled is a pull_only task: its image is present and it exited 0 when
// the pull ended. It has no container, snapshot or network, so stopping
// and destroying it do nothing.
type pulled struct {
	id   string
	done chan struct{}
	exit executor.ExitStatus
}

// newPulled is a pull_only task that finished at exitedAt.
func newPulled(id string, exitedAt time.Time) *pulled {
	p := &pulled{id: id, done: make(chan struct{}), exit: executor.ExitStatus{ExitedAt: exitedAt}}
	close(p.done)
	return p
}

func (p *pulled) ID() string                                                { return p.id }
func (p *pulled) PID() uint32                                               { return 0 }
func (p *pulled) Done() <-chan struct{}                                     { return p.done }
func (p *pulled) Exit() executor.ExitStatus                                 { return p.exit }
func (p *pulled) Stop(context.Context, syscall.Signal, time.Duration) error { return nil }
func (p *pulled) Signal(context.Context, syscall.Signal) error              { return errNoProcess }
func (p *pulled) DeleteProcess(context.Context, bool) error                 { return nil }
func (p *pulled) Delete(context.Context, bool) error                        { return nil }
func (p *pulled) Exec(context.Context, executor.ExecOptions) (int, error)   { return 0, errNoProcess }
func (p *pulled) Stats(context.Context) (*executor.Stats, error)            { return nil, errNoProcess }
