package executor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/hashicorp/go-hclog"
)

// ioDrainTimeout bounds how long Exec waits, after the process exited, for
// its output to be copied: a background child may hold the pipes open.
const ioDrainTimeout = 5 * time.Second

// ExecOptions describes a process to run in a task's container.
type ExecOptions struct {
	Args []string
	// Tty allocates a terminal; its output all goes to Stdout.
	Tty    bool
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Resize carries terminal size changes while the process runs (Tty only).
	Resize <-chan TermSize
	// Cpuset, when set, is the task's cpuset cgroup (as given to Create);
	// the process joins it once started.
	Cpuset *Cpuset
}

// TermSize is a terminal size in characters.
type TermSize struct{ Width, Height uint16 }

// Exec runs a process in the task's container with the container's process
// settings (user, env, cwd, capabilities), Args and the terminal replaced, and
// returns its exit code. When ctx ends first the process is killed. Stdin is
// read until EOF; a reader that never ends keeps one copying goroutine
// blocked until it does.
func (t *Task) Exec(ctx context.Context, opts ExecOptions) (int, error) {
	if len(opts.Args) == 0 {
		return 0, errors.New("exec needs a command")
	}
	ctx = t.rt.withNS(ctx)
	spec, err := t.container.Spec(ctx)
	if err != nil {
		return 0, fmt.Errorf("failed to read container spec: %w", err)
	}
	if spec.Process == nil {
		return 0, errors.New("container spec has no process")
	}
	if spec.Linux != nil {
		if err := opts.Cpuset.copyTo(spec.Linux.CgroupsPath); err != nil {
			t.logger.Warn("exec process starts outside the task's cpuset", "error", err)
		}
	}
	pspec := *spec.Process
	pspec.Args = opts.Args
	pspec.CommandLine = ""
	pspec.Terminal = opts.Tty
	pspec.ConsoleSize = nil
	pspec.Env = append([]string(nil), spec.Process.Env...)
	if opts.Tty && !hasEnv(pspec.Env, "TERM") {
		pspec.Env = append(pspec.Env, "TERM=xterm")
	}

	execID, err := newExecID()
	if err != nil {
		return 0, err
	}
	stderr := opts.Stderr
	if opts.Tty {
		stderr = nil
	}
	// The shim keeps the process's stdin open until told otherwise, so the
	// end of the caller's stdin is passed on with CloseIO once the process
	// has started.
	started := make(chan struct{})
	var proc client.Process
	var stdin io.Reader
	if opts.Stdin != nil {
		stdin = &eofNotifier{r: opts.Stdin, eof: func() {
			go func() {
				select {
				case <-started:
				case <-ctx.Done():
					return
				}
				if err := proc.CloseIO(ctx, client.WithStdinCloser); err != nil {
					t.logger.Debug("failed to close exec stdin", "error", err)
				}
			}()
		}}
	}
	ioOpts := []cio.Opt{cio.WithStreams(stdin, opts.Stdout, stderr), cio.WithFIFODir(os.TempDir())}
	if opts.Tty {
		ioOpts = append(ioOpts, cio.WithTerminal)
	}
	proc, err = t.task.Exec(ctx, execID, &pspec, cio.NewCreator(ioOpts...))
	if err != nil {
		return 0, fmt.Errorf("failed to create exec process: %w", err)
	}
	logger := t.logger.With("exec_id", execID)
	cleanupCtx := context.WithoutCancel(ctx)
	defer func() {
		dctx, cancel := context.WithTimeout(cleanupCtx, cleanupTimeout)
		defer cancel()
		if _, err := proc.Delete(dctx, client.WithProcessKill); err != nil {
			logger.Warn("failed to delete exec process", "error", err)
		}
	}()

	waitCtx, cancelWait := context.WithCancel(cleanupCtx)
	defer cancelWait()
	statusC, err := proc.Wait(waitCtx)
	if err != nil {
		return 0, fmt.Errorf("failed to wait for exec process: %w", err)
	}
	if err := proc.Start(ctx); err != nil {
		return 0, fmt.Errorf("failed to start exec process: %w", err)
	}
	close(started)
	if err := opts.Cpuset.join(proc.Pid()); err != nil && !processGone(err) {
		logger.Warn("exec process runs outside the task's cpuset", "error", err)
	}
	exited := make(chan struct{})
	defer close(exited)
	if opts.Tty && opts.Resize != nil {
		go resizeLoop(cleanupCtx, proc, opts.Resize, exited, logger)
	}

	var status client.ExitStatus
	select {
	case status = <-statusC:
	case <-ctx.Done():
		kctx, cancel := context.WithTimeout(cleanupCtx, cleanupTimeout)
		defer cancel()
		if err := proc.Kill(kctx, syscall.SIGKILL); err != nil {
			logger.Warn("failed to kill exec process", "error", err)
		}
		return 0, fmt.Errorf("exec interrupted: %w", ctx.Err())
	}
	code, _, err := status.Result()
	if err != nil {
		return 0, fmt.Errorf("failed to get exec exit status: %w", err)
	}
	drainIO(ctx, proc.IO())
	return int(code), nil
}

func resizeLoop(ctx context.Context, proc client.Process, sizes <-chan TermSize, exited <-chan struct{}, logger hclog.Logger) {
	for {
		select {
		case <-exited:
			return
		case size, ok := <-sizes:
			if !ok {
				return
			}
			if err := proc.Resize(ctx, uint32(size.Width), uint32(size.Height)); err != nil {
				logger.Debug("failed to resize exec terminal", "error", err)
			}
		}
	}
}

// drainIO waits for the process output to be copied to the caller's writers.
func drainIO(ctx context.Context, pio cio.IO) {
	if pio == nil {
		return
	}
	drained := make(chan struct{})
	go func() {
		pio.Wait()
		close(drained)
	}()
	timer := time.NewTimer(ioDrainTimeout)
	defer timer.Stop()
	select {
	case <-drained:
	case <-ctx.Done():
	case <-timer.C:
	}
}

// eofNotifier calls eof once when the reader it wraps reaches its end.
type eofNotifier struct {
	r    io.Reader
	once sync.Once
	eof  func()
}

func (e *eofNotifier) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		e.once.Do(e.eof)
	}
	return n, err
}

func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return true
		}
	}
	return false
}

func newExecID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("failed to generate exec id: %w", err)
	}
	return "exec-" + hex.EncodeToString(b), nil
}
