//go:build integration

package executor_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

const (
	busyboxRef  = "docker.io/library/busybox:executor-test"
	snapshotter = "overlayfs"
	testTimeout = 2 * time.Minute
)

// bed is one hermetic containerd with the busybox image, checked for leaks
// when the test ends.
type bed struct {
	cd  *testbed.Containerd
	rt  *executor.Runtime
	img client.Image
	ctx context.Context
}

func newBed(t *testing.T) *bed {
	t.Helper()
	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	img := testbed.ImportBusybox(t, cd, busyboxRef)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return &bed{cd: cd, rt: newRuntime(cd), img: img, ctx: ctx}
}

func newRuntime(cd *testbed.Containerd) *executor.Runtime {
	return executor.New(cd.Client, cd.Namespace, hclog.New(&hclog.LoggerOptions{
		Name: "test", Level: hclog.Warn, Output: os.Stderr,
	}))
}

// output collects what a task writes to one of its log fifos.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
	eof     chan struct{}
}

// fifo makes a named pipe and reads it, as Nomad's logmon would, until all
// writers are gone.
func fifo(t *testing.T, name string) (string, *output) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	o := &output{changed: make(chan struct{}), eof: make(chan struct{})}
	opened := make(chan struct{})
	go func() {
		defer close(o.eof)
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		close(opened)
		if err != nil {
			return
		}
		defer f.Close()
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			if n > 0 {
				o.mu.Lock()
				o.buf.Write(b[:n])
				close(o.changed)
				o.changed = make(chan struct{})
				o.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-opened:
		default:
			// Nobody ever opened the write end: do it to release the reader.
			if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
		}
	})
	return path, o
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output contains s.
func (o *output) waitFor(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		has, changed := strings.Contains(o.buf.String(), s), o.changed
		o.mu.Unlock()
		if has {
			return
		}
		select {
		case <-changed:
		case <-o.eof:
			if !strings.Contains(o.String(), s) {
				t.Fatalf("output ended without %q: %q", s, o.String())
			}
			return
		case <-deadline.C:
			t.Fatalf("no %q in output after %s: %q", s, timeout, o.String())
		}
	}
}

// all waits for the end of the output.
func (o *output) all(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case <-o.eof:
	case <-time.After(timeout):
		t.Fatalf("output did not end within %s: %q", timeout, o.String())
	}
	return o.String()
}

// runReady runs spec as task id with its stdout on a fifo of the test's own
// and waits up to 30s for the task to print "ready".
func (b *bed) runReady(t *testing.T, id string, spec executor.SpecConfig) *executor.Task {
	t.Helper()
	outPath, stdout := fifo(t, "stdout")
	task := b.run(t, id, spec, outPath, "")
	stdout.waitFor(t, "ready", 30*time.Second)
	return task
}

// run creates and starts a container running args in busybox.
func (b *bed) run(t *testing.T, id string, spec executor.SpecConfig, stdout, stderr string) *executor.Task {
	t.Helper()
	task, err := b.rt.Create(b.ctx, executor.ContainerConfig{
		ID: id, Image: b.img, Snapshotter: snapshotter,
		Labels: map[string]string{"com.hashicorp.nomad.task_name": id},
		Spec:   spec, StdoutPath: stdout, StderrPath: stderr,
	})
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	t.Cleanup(func() {
		if err := task.Delete(context.Background(), true); err != nil {
			t.Errorf("delete %s: %v", id, err)
		}
	})
	if err := task.Start(b.ctx); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return task
}

func waitDone(t *testing.T, task *executor.Task, timeout time.Duration) executor.ExitStatus {
	t.Helper()
	select {
	case <-task.Done():
		return task.Exit()
	case <-time.After(timeout):
		t.Fatalf("task %s did not exit within %s", task.ID(), timeout)
	}
	return executor.ExitStatus{}
}

func sh(script string) executor.SpecConfig {
	return executor.SpecConfig{Command: []string{"sh", "-c", script}}
}

// A script that stays up until SIGTERM and then exits with code; it prints
// "ready" once the trap is set.
func termExits(code string) string {
	return `trap "exit ` + code + `" TERM; echo ready; while :; do sleep 1 & wait $!; done`
}

func assertGone(t *testing.T, b *bed, id string) {
	t.Helper()
	ctx := b.cd.Context()
	if _, err := b.cd.Client.LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("container %s: %v, want not found", id, err)
	}
	if _, err := b.cd.Client.SnapshotService(snapshotter).Stat(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot %s: %v, want not found", id, err)
	}
}
