//go:build integration

package executor_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
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

func TestCreateStartExitCodeAndLogs(t *testing.T) {
	b := newBed(t)
	outPath, stdout := fifo(t, "stdout")
	errPath, stderr := fifo(t, "stderr")
	spec := sh(`echo "out $GREETING from $(pwd) as $(id -u):$(id -g)"; echo err >&2; exit 3`)
	spec.Env = map[string]string{"GREETING": "hello"}
	spec.Cwd = "/tmp"
	spec.User = "1000:1000"
	task := b.run(t, "exit-code", spec, outPath, errPath)
	if task.ID() != "exit-code" || task.PID() == 0 {
		t.Fatalf("id %q pid %d", task.ID(), task.PID())
	}

	es := waitDone(t, task, time.Minute)
	if es.Code != 3 || es.Signal != 0 || es.OOMKilled || es.Err != nil || es.ExitedAt.IsZero() {
		t.Fatalf("exit = %+v, want code 3", es)
	}
	if got := stdout.all(t, 30*time.Second); got != "out hello from /tmp as 1000:1000\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := stderr.all(t, 30*time.Second); got != "err\n" {
		t.Errorf("stderr = %q", got)
	}
	if running, err := task.Running(b.ctx); err != nil || running {
		t.Errorf("running = %v, %v after exit", running, err)
	}

	ctr, err := b.cd.Client.LoadContainer(b.cd.Context(), "exit-code")
	if err != nil {
		t.Fatal(err)
	}
	labels, err := ctr.Labels(b.cd.Context())
	if err != nil || labels["com.hashicorp.nomad.task_name"] != "exit-code" {
		t.Errorf("labels = %v, %v", labels, err)
	}
	info, err := ctr.Info(b.cd.Context())
	if err != nil || info.Image != busyboxRef || info.Snapshotter != snapshotter || info.SnapshotKey != "exit-code" || info.Runtime.Name != "io.containerd.runc.v2" {
		t.Errorf("container info = %+v, %v", info, err)
	}
}

func TestNamedUserResolvedFromImage(t *testing.T) {
	b := newBed(t)
	outPath, stdout := fifo(t, "stdout")
	spec := sh(`id -u; id -g`)
	spec.User = "app"
	task := b.run(t, "named-user", spec, outPath, "")
	if es := waitDone(t, task, time.Minute); es.Code != 0 {
		t.Fatalf("exit = %+v", es)
	}
	if got := stdout.all(t, 30*time.Second); got != "1000\n1000\n" {
		t.Fatalf("output = %q, want uid and gid of app", got)
	}
}

func TestStop(t *testing.T) {
	b := newBed(t)

	t.Run("signal handled", func(t *testing.T) {
		outPath, stdout := fifo(t, "stdout")
		task := b.run(t, "stop-handled", sh(termExits("0")), outPath, "")
		stdout.waitFor(t, "ready", 30*time.Second)
		start := time.Now()
		if err := task.Stop(b.ctx, syscall.SIGTERM, time.Minute); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("stop took %s though the task exited on SIGTERM", took)
		}
		if es := task.Exit(); es.Code != 0 || es.Signal != 0 {
			t.Errorf("exit = %+v", es)
		}
		// Stopping what already exited is success.
		if err := task.Stop(b.ctx, syscall.SIGTERM, time.Second); err != nil {
			t.Errorf("second stop: %v", err)
		}
	})

	t.Run("signal ignored", func(t *testing.T) {
		outPath, stdout := fifo(t, "stdout")
		task := b.run(t, "stop-ignored", sh(`trap "" TERM; echo ready; while :; do sleep 1 & wait $!; done`), outPath, "")
		stdout.waitFor(t, "ready", 30*time.Second)
		const timeout = 2 * time.Second
		start := time.Now()
		if err := task.Stop(b.ctx, syscall.SIGTERM, timeout); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < timeout {
			t.Errorf("stop returned after %s, before the %s timeout", took, timeout)
		}
		if es := task.Exit(); es.Code != 137 || es.Signal != 9 || es.OOMKilled {
			t.Errorf("exit = %+v, want SIGKILL", es)
		}
	})
}

func TestOOMKill(t *testing.T) {
	b := newBed(t)

	hog := executor.SpecConfig{
		Command:     []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"},
		MemoryBytes: 16 << 20,
	}
	task := b.run(t, "oom-hog", hog, "", "")
	es := waitDone(t, task, time.Minute)
	if !es.OOMKilled || es.Signal != 9 {
		t.Fatalf("exit = %+v, want an OOM kill", es)
	}

	outPath, stdout := fifo(t, "stdout")
	spec := sh(termExits("0"))
	spec.MemoryBytes = 16 << 20
	killed := b.run(t, "sigkilled", spec, outPath, "")
	stdout.waitFor(t, "ready", 30*time.Second)
	if err := killed.Signal(b.ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if es := waitDone(t, killed, time.Minute); es.OOMKilled || es.Signal != 9 {
		t.Fatalf("exit = %+v, want SIGKILL without OOM", es)
	}
}

func TestExec(t *testing.T) {
	b := newBed(t)
	spec := sh(termExits("0"))
	spec.Env = map[string]string{"FROM_TASK": "yes"}
	spec.Cwd = "/tmp"
	task := b.run(t, "exec-target", spec, "", "")

	t.Run("non-interactive", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code, err := task.Exec(b.ctx, executor.ExecOptions{
			Args:   []string{"sh", "-c", `echo "$FROM_TASK in $(pwd)"; test -t 1 || echo "no tty"; echo oops >&2; exit 7`},
			Stdout: &stdout, Stderr: &stderr,
		})
		if err != nil || code != 7 {
			t.Fatalf("exec = %d, %v", code, err)
		}
		if stdout.String() != "yes in /tmp\nno tty\n" || stderr.String() != "oops\n" {
			t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
		}
	})

	t.Run("stdin", func(t *testing.T) {
		var stdout bytes.Buffer
		code, err := task.Exec(b.ctx, executor.ExecOptions{
			Args:  []string{"tr", "a-z", "A-Z"},
			Stdin: strings.NewReader("shout\n"), Stdout: &stdout, Stderr: io.Discard,
		})
		if err != nil || code != 0 || stdout.String() != "SHOUT\n" {
			t.Fatalf("exec = %d, %v, %q", code, err, stdout.String())
		}
	})

	t.Run("tty", func(t *testing.T) {
		stdinR, stdinW := io.Pipe()
		defer stdinW.Close()
		resize := make(chan executor.TermSize)
		var stdout syncBuffer
		done := make(chan struct{})
		var code int
		var err error
		go func() {
			defer close(done)
			code, err = task.Exec(b.ctx, executor.ExecOptions{
				Args: []string{"sh", "-c", `tty; read line; stty size; echo "got $line"; exit 5`},
				Tty:  true, Stdin: stdinR, Stdout: &stdout, Resize: resize,
			})
		}()
		// The second size is taken only once the first was applied.
		for range 2 {
			select {
			case resize <- executor.TermSize{Width: 100, Height: 30}:
			case <-done:
				t.Fatalf("tty exec ended early: %d, %v (output %q)", code, err, stdout.String())
			case <-time.After(time.Minute):
				t.Fatal("tty exec took no terminal size")
			}
		}
		if _, err := io.WriteString(stdinW, "go\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("tty exec did not end")
		}
		out := stdout.String()
		if err != nil || code != 5 {
			t.Fatalf("exec = %d, %v (output %q)", code, err, out)
		}
		for _, want := range []string{"/dev/pts/", "30 100\r\n", "got go\r\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("tty output %q lacks %q", out, want)
			}
		}
	})

	t.Run("context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		defer cancel()
		_, err := task.Exec(ctx, executor.ExecOptions{Args: []string{"sleep", "600"}})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("exec = %v, want the deadline", err)
		}
	})

	if err := task.Stop(b.ctx, syscall.SIGTERM, time.Minute); err != nil {
		t.Fatal(err)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func TestStats(t *testing.T) {
	b := newBed(t)
	spec := sh(`while :; do :; done`)
	spec.MemoryBytes = 64 << 20
	task := b.run(t, "stats", spec, "", "")
	// An exec round trip gives the busy loop some time on the CPU.
	if code, err := task.Exec(b.ctx, executor.ExecOptions{Args: []string{"true"}}); err != nil || code != 0 {
		t.Fatalf("exec = %d, %v", code, err)
	}
	s, err := task.Stats(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUTotalNanos == 0 || s.CPUUserNanos+s.CPUSystemNanos == 0 || s.MemoryUsage == 0 || s.MemoryRSS == 0 {
		t.Fatalf("stats = %+v", s)
	}
	if !slices.Contains(s.MemoryMeasured, "Usage") || !slices.Contains(s.MemoryMeasured, "RSS") {
		t.Errorf("measured = %v", s.MemoryMeasured)
	}
	if slices.Contains(s.MemoryMeasured, "Max Usage") && s.MemoryMaxUsage < s.MemoryUsage {
		t.Errorf("max usage %d below usage %d", s.MemoryMaxUsage, s.MemoryUsage)
	}
	if time.Since(s.Timestamp) > time.Minute || s.Timestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("timestamp %s", s.Timestamp)
	}
	if err := task.Stop(b.ctx, syscall.SIGKILL, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAfterRestart(t *testing.T) {
	b := newBed(t)

	t.Run("running", func(t *testing.T) {
		outPath, stdout := fifo(t, "stdout")
		task := b.run(t, "reattach", sh(termExits("4")), outPath, "")
		stdout.waitFor(t, "ready", 30*time.Second)

		loaded, err := newRuntime(b.cd).Load(b.ctx, "reattach")
		if err != nil {
			t.Fatal(err)
		}
		if loaded.PID() != task.PID() || loaded.ID() != "reattach" {
			t.Fatalf("loaded pid %d, created pid %d", loaded.PID(), task.PID())
		}
		if running, err := loaded.Running(b.ctx); err != nil || !running {
			t.Fatalf("running = %v, %v", running, err)
		}
		select {
		case <-loaded.Done():
			t.Fatal("loaded task reports an exit while running")
		default:
		}
		if err := loaded.Signal(b.ctx, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if es := waitDone(t, loaded, time.Minute); es.Code != 4 {
			t.Fatalf("loaded exit = %+v", es)
		}
		if es := waitDone(t, task, time.Minute); es.Code != 4 {
			t.Fatalf("original exit = %+v", es)
		}
	})

	t.Run("exited while detached", func(t *testing.T) {
		task := b.run(t, "exited-early", sh(`exit 9`), "", "")
		waitDone(t, task, time.Minute)
		loaded, err := newRuntime(b.cd).Load(b.ctx, "exited-early")
		if err != nil {
			t.Fatal(err)
		}
		if es := waitDone(t, loaded, time.Minute); es.Code != 9 || es.Err != nil || es.ExitedAt.IsZero() {
			t.Fatalf("exit = %+v, want the real code 9", es)
		}
	})

	t.Run("gone", func(t *testing.T) {
		if _, err := b.rt.Load(b.ctx, "never-created"); !errdefs.IsNotFound(err) {
			t.Fatalf("load = %v, want not found", err)
		}
	})
}

func TestDelete(t *testing.T) {
	b := newBed(t)
	outPath, stdout := fifo(t, "stdout")
	task := b.run(t, "delete-me", sh(termExits("0")), outPath, "")
	stdout.waitFor(t, "ready", 30*time.Second)

	if err := task.Delete(b.ctx, false); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("delete of a running task = %v, want a refusal", err)
	}
	if running, err := task.Running(b.ctx); err != nil || !running {
		t.Fatalf("refused delete stopped the task: %v, %v", running, err)
	}
	if err := task.Delete(b.ctx, true); err != nil {
		t.Fatalf("forced delete: %v", err)
	}
	if es := waitDone(t, task, time.Second); es.Signal != 9 {
		t.Errorf("exit after forced delete = %+v", es)
	}
	assertGone(t, b, "delete-me")
	if err := task.Delete(b.ctx, false); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if err := b.rt.Remove(b.ctx, "delete-me"); err != nil {
		t.Errorf("remove of a deleted container: %v", err)
	}
	if _, err := b.rt.Load(b.ctx, "delete-me"); !errdefs.IsNotFound(err) {
		t.Errorf("load after delete = %v, want not found", err)
	}

	// Remove by ID takes a running container down with its task.
	other := b.run(t, "remove-me", sh(termExits("0")), "", "")
	if err := b.rt.Remove(b.ctx, "remove-me"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	waitDone(t, other, time.Minute)
	assertGone(t, b, "remove-me")

	// A created task that never started is deleted without force.
	created, err := b.rt.Create(b.ctx, executor.ContainerConfig{
		ID: "never-started", Image: b.img, Snapshotter: snapshotter, Spec: sh("exit 0"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := created.Delete(b.ctx, false); err != nil {
		t.Fatalf("delete of a created task: %v", err)
	}
	assertGone(t, b, "never-started")
}

func TestFailedCreateLeavesNothing(t *testing.T) {
	b := newBed(t)
	outPath, _ := fifo(t, "stdout")
	cases := []struct {
		name string
		cfg  executor.ContainerConfig
		want string
	}{
		{
			name: "unknown runtime",
			cfg:  executor.ContainerConfig{Runtime: "io.containerd.nosuch.v1", Spec: sh("exit 0"), StdoutPath: outPath},
			want: "failed to create task",
		},
		{
			name: "unknown user",
			cfg:  executor.ContainerConfig{Spec: executor.SpecConfig{Command: []string{"true"}, User: "nosuchuser"}},
			want: "failed to create container",
		},
		{
			name: "missing binary",
			cfg:  executor.ContainerConfig{Spec: executor.SpecConfig{Command: []string{"/no/such/binary"}}},
			want: "failed to create task",
		},
		{
			name: "unknown snapshotter",
			cfg:  executor.ContainerConfig{Snapshotter: "nosuch", Spec: sh("exit 0")},
			want: "failed to use snapshotter nosuch",
		},
		{
			name: "log path not a fifo",
			cfg:  executor.ContainerConfig{Spec: sh("exit 0"), StdoutPath: "/etc/hostname"},
			want: "not a named pipe",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.ID, cfg.Image = "failed-create", b.img
			if cfg.Snapshotter == "" {
				cfg.Snapshotter = snapshotter
			}
			task, err := b.rt.Create(b.ctx, cfg)
			if err == nil {
				_ = task.Delete(b.ctx, true)
				t.Fatal("create succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			assertGone(t, b, "failed-create")
		})
	}

	// A snapshot left by an interrupted create does not block the next one.
	if _, err := b.cd.Client.SnapshotService(snapshotter).Prepare(b.cd.Context(), "stale", ""); err != nil {
		t.Fatal(err)
	}
	stale := b.run(t, "stale", sh("exit 0"), "", "")
	if es := waitDone(t, stale, time.Minute); es.Code != 0 {
		t.Fatalf("exit = %+v", es)
	}

	// A second create with a taken ID fails and leaves the first alone.
	first := b.run(t, "taken", sh(termExits("0")), "", "")
	_, err := b.rt.Create(b.ctx, executor.ContainerConfig{ID: "taken", Image: b.img, Snapshotter: snapshotter, Spec: sh("exit 0")})
	if !errdefs.IsAlreadyExists(err) {
		t.Fatalf("duplicate create = %v, want already exists", err)
	}
	if running, err := first.Running(b.ctx); err != nil || !running {
		t.Fatalf("duplicate create disturbed the first: %v, %v", running, err)
	}
	if _, err := b.cd.Client.SnapshotService(snapshotter).Stat(b.cd.Context(), "taken"); err != nil {
		t.Fatalf("duplicate create removed the first's snapshot: %v", err)
	}
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
