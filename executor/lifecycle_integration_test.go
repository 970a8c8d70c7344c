//go:build integration

package executor_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

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
		task := b.runReady(t, "stop-handled", sh(termExits("0")))
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
		task := b.runReady(t, "stop-ignored", sh(`trap "" TERM; echo ready; while :; do sleep 1 & wait $!; done`))
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
	// the exit reads the cgroup's counter itself, not through containerd
	if kills, err := executor.OOMKillsFromFile(task); err != nil || kills == 0 {
		t.Fatalf("oom kill counter of the task's cgroup: %d, %v", kills, err)
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
	if kills, err := executor.OOMKillsFromFile(killed); err != nil || kills != 0 {
		t.Fatalf("oom kill counter of the killed task's cgroup: %d, %v", kills, err)
	}
}

func TestLoadAfterRestart(t *testing.T) {
	b := newBed(t)

	t.Run("running", func(t *testing.T) {
		task := b.runReady(t, "reattach", sh(termExits("4")))

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

	// containerd drops a task whose processes exited while it was down;
	// the container stays: it loads as exited with an unknown status
	t.Run("task gone, container kept", func(t *testing.T) {
		task := b.run(t, "task-gone", sh(`exit 3`), "", "")
		waitDone(t, task, time.Minute)
		c, err := b.cd.Client.LoadContainer(b.ctx, "task-gone")
		if err != nil {
			t.Fatal(err)
		}
		ct, err := c.Task(b.ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ct.Delete(b.ctx); err != nil {
			t.Fatal(err)
		}
		loaded, err := newRuntime(b.cd).Load(b.ctx, "task-gone")
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		es := waitDone(t, loaded, time.Second)
		if es.Code != int(client.UnknownExitStatus) || !errdefs.IsNotFound(es.Err) || !strings.Contains(es.Err.Error(), "exit status unknown") {
			t.Fatalf("exit = %+v, want an unknown status that says why", es)
		}
		if running, err := loaded.Running(b.ctx); err != nil || running {
			t.Errorf("running = %v, %v", running, err)
		}
		if err := loaded.Signal(b.ctx, syscall.SIGTERM); !errdefs.IsNotFound(err) {
			t.Errorf("signal = %v, want not found", err)
		}
		if err := loaded.Stop(b.ctx, syscall.SIGTERM, time.Second); err != nil {
			t.Errorf("stop of an exited task: %v", err)
		}
		if err := loaded.Delete(b.ctx, false); err != nil {
			t.Fatalf("delete: %v", err)
		}
		assertGone(t, b, "task-gone")
	})
}

// Purge removes what is left of a container, down to a snapshot whose
// container was deleted without it.
func TestPurge(t *testing.T) {
	b := newBed(t)
	b.run(t, "purge-running", sh(termExits("0")), "", "")
	if err := b.rt.Purge(b.ctx, "purge-running", snapshotter); err != nil {
		t.Fatalf("purge of a running container: %v", err)
	}
	assertGone(t, b, "purge-running")

	task := b.run(t, "purge-snapshot", sh(`exit 0`), "", "")
	waitDone(t, task, time.Minute)
	c, err := b.cd.Client.LoadContainer(b.ctx, "purge-snapshot")
	if err != nil {
		t.Fatal(err)
	}
	if ct, err := c.Task(b.ctx, nil); err == nil {
		if _, err := ct.Delete(b.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(b.ctx); err != nil { // the snapshot stays
		t.Fatal(err)
	}
	if _, err := b.cd.Client.SnapshotService(snapshotter).Stat(b.ctx, "purge-snapshot"); err != nil {
		t.Fatalf("snapshot should be left: %v", err)
	}
	if err := b.rt.Purge(b.ctx, "purge-snapshot", snapshotter); err != nil {
		t.Fatalf("purge of a left snapshot: %v", err)
	}
	assertGone(t, b, "purge-snapshot")
	if err := b.rt.Purge(b.ctx, "purge-snapshot", snapshotter); err != nil {
		t.Errorf("purge of nothing: %v", err)
	}
}

func TestDelete(t *testing.T) {
	b := newBed(t)
	task := b.runReady(t, "delete-me", sh(termExits("0")))

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
