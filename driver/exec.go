package driver

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// ExecTask runs a command in the task's container and collects its output
// (script checks).
func (d *Driver) ExecTask(taskID string, cmd []string, timeout time.Duration) (*drivers.ExecTaskResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	if len(cmd) == 0 {
		return nil, fmt.Errorf("exec: a command is required")
	}
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code, err := h.task.Exec(ctx, executor.ExecOptions{Args: cmd, Stdout: &stdout, Stderr: &stderr, Cpuset: execCpuset(h.cfg, h.logger)})
	if err != nil {
		return nil, fmt.Errorf("failed to exec in task %s: %w", taskID, err)
	}
	return &drivers.ExecTaskResult{
		Stdout:     stdout.Bytes(),
		Stderr:     stderr.Bytes(),
		ExitResult: &drivers.ExitResult{ExitCode: code},
	}, nil
}

// ExecTaskStreaming runs an interactive command (`nomad alloc exec`), with
// a terminal and window resizes when asked for.
func (d *Driver) ExecTaskStreaming(ctx context.Context, taskID string, opts *drivers.ExecOptions) (*drivers.ExitResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	if len(opts.Command) == 0 {
		return nil, fmt.Errorf("exec: a command is required")
	}
	resize := make(chan executor.TermSize, 1)
	go forwardResizes(ctx, opts.ResizeCh, resize)
	code, err := h.task.Exec(ctx, executor.ExecOptions{
		Args:   opts.Command,
		Tty:    opts.Tty,
		Stdin:  opts.Stdin,
		Stdout: opts.Stdout,
		Stderr: opts.Stderr,
		Resize: resize,
		Cpuset: execCpuset(h.cfg, h.logger),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to exec in task %s: %w", taskID, err)
	}
	return &drivers.ExitResult{ExitCode: code}, nil
}

func forwardResizes(ctx context.Context, in <-chan drivers.TerminalSize, out chan<- executor.TermSize) {
	defer close(out)
	for {
		select {
		case <-ctx.Done():
			return
		case s, ok := <-in:
			if !ok {
				return
			}
			select {
			case out <- executor.TermSize{Width: uint16(s.Width), Height: uint16(s.Height)}:
			case <-ctx.Done():
				return
			}
		}
	}
}
