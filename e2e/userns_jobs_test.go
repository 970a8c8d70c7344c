//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/typeurl/v2"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
	"github.com/nomad-containerd/nomad-driver-containerd/userns"
)

// TestUserNSExampleJobs runs example jobs with userns_mode = "auto" added
// to their tasks' config blocks and nothing else changed, under the same
// checks as TestExampleJobs; on top, every task's process runs as an
// unprivileged host ID of the plugin's pool, read from the host's /proc,
// and no two live tasks share a range.
func TestUserNSExampleJobs(t *testing.T) {
	e := setup(t)
	e.jobs = t.TempDir()
	for _, job := range usernsJobFiles {
		src, err := os.ReadFile(filepath.Join(testbed.RepoRoot(), "example-jobs", job))
		must.NoError(t, err)
		out, err := setTaskOption(src, job, "userns_mode", "auto")
		must.NoError(t, err)
		must.NoError(t, os.WriteFile(filepath.Join(e.jobs, job), out, 0o644))
	}
	w := watchUserNS(t, e)
	for _, c := range []struct {
		name, job string
		check     func(*testing.T, *env)
		tasks     []string
		// batch: a task may end before its process is read; its range
		// is then read from its container's spec
		batch bool
	}{
		{"service", "service", testService, []string{"web"}, false},
		{"bridge ports", "bridge-ports", testBridgePorts, []string{"web"}, false},
		{"group bridge", "group-bridge", testGroupBridge, []string{"web"}, false},
		{"verified image", "verified", testVerified, []string{"app"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, e)
			w.check(t, c.job, c.tasks, c.batch)
		})
	}
	// binds.nomad.hcl on a host directory that others may write (mode
	// 1777, as /tmp): the task's root writes there as its range's first
	// host ID, not as the host's root
	t.Run("binds", func(t *testing.T) {
		dir := filepath.Join(e.hostDir, "shared")
		must.NoError(t, os.Mkdir(dir, 0o755))
		must.NoError(t, os.Chmod(dir, 0o1777))
		must.NoError(t, os.WriteFile(filepath.Join(dir, "input"), []byte("from-the-host\n"), 0o644))
		st := runBinds(t, e, dir)
		w.check(t, "binds", []string{"binds"}, true)
		owner := st.Sys().(*syscall.Stat_t).Uid
		must.Eq(t, w.rangeOf(t, "binds", "binds").Start, owner, must.Sprint("the file the task's root wrote is not its range's first ID's"))
	})
	// the same on a directory only the host's root may write: by design
	// the write is refused (host binds keep the host's ownership)
	t.Run("binds keep host ownership", func(t *testing.T) {
		e.run(t, "binds.nomad.hcl", "host_dir="+e.hostDir)
		a := e.alloc(t, "binds", "complete")
		// what anyone may read it reads; the root-owned directory refuses its write
		must.StrContains(t, e.cli(t, "alloc", "logs", a.ID), "from-the-host")
		must.StrContains(t, e.cli(t, "alloc", "logs", "-stderr", a.ID), "can't create /data/rw/output: Permission denied")
		_, err := os.Stat(filepath.Join(e.hostDir, "output"))
		must.True(t, os.IsNotExist(err), must.Sprintf("the task wrote into a root-only host directory: %v", err))
		e.stopJob(t, "binds")
		w.check(t, "binds", []string{"binds"}, true)
	})
}

// nsTask is what the host sees of a task's process when it is created.
type nsTask struct {
	job, task string
	uid       uint32       // the process's real UID on the host
	ids       userns.Range // what its user namespace maps onto
	fromProc  bool         // read from /proc, not from the container's spec
}

// usernsWatch records the host UID and ID range of every task containerd
// creates, from its TaskCreate event: the process then waits for its start
// with its IDs set (runc sets them before it waits).
type usernsWatch struct {
	mu      sync.Mutex
	tasks   map[string]nsTask // by container ID
	live    map[string]bool
	overlap []string
	errs    []error
}

func watchUserNS(t *testing.T, e *env) *usernsWatch {
	t.Helper()
	w := &usernsWatch{tasks: map[string]nsTask{}, live: map[string]bool{}}
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), e.cd.Namespace))
	events, errs := e.cd.Client.Subscribe(ctx, `topic=="/tasks/create"`, `topic=="/containers/delete"`)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			select {
			case ev := <-events:
				v, err := typeurl.UnmarshalAny(ev.Event)
				if err != nil {
					w.fail(err)
					continue
				}
				switch v := v.(type) {
				case *apievents.TaskCreate:
					w.created(ctx, e, v)
				case *apievents.ContainerDelete:
					w.mu.Lock()
					delete(w.live, v.ID)
					w.mu.Unlock()
				}
			case err := <-errs:
				if ctx.Err() == nil {
					w.fail(fmt.Errorf("failed to watch containerd's events: %w", err))
				}
				return
			}
		}
	}()
	return w
}

func (w *usernsWatch) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, err)
}

// created reads the new task's process, or its container's spec where the
// process has run and ended already, and checks its range against those of
// the live tasks.
func (w *usernsWatch) created(ctx context.Context, e *env, ev *apievents.TaskCreate) {
	c, err := e.cd.Client.LoadContainer(ctx, ev.ContainerID)
	if err != nil {
		w.fail(fmt.Errorf("failed to load container %s: %w", ev.ContainerID, err))
		return
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		w.fail(fmt.Errorf("failed to read the labels of %s: %w", ev.ContainerID, err))
		return
	}
	nt := nsTask{job: labels["nomad.job_id"], task: labels["nomad.task_name"], fromProc: true}
	nt.uid, nt.ids, err = procIDs(ev.Pid)
	if err != nil {
		nt.fromProc = false
		spec, serr := c.Spec(ctx)
		if serr != nil || spec.Linux == nil || spec.Process == nil {
			w.fail(fmt.Errorf("failed to read the IDs of %s: %w (spec: %v)", ev.ContainerID, err, serr))
			return
		}
		if len(spec.Linux.UIDMappings) > 0 {
			m := spec.Linux.UIDMappings[0]
			nt.ids = userns.Range{Start: m.HostID, Size: m.Size}
			nt.uid = m.HostID + spec.Process.User.UID - m.ContainerID
		} else {
			nt.uid = spec.Process.User.UID
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.live {
		o := w.tasks[id]
		if uint64(o.ids.Start) < uint64(nt.ids.Start)+uint64(nt.ids.Size) && uint64(nt.ids.Start) < uint64(o.ids.Start)+uint64(o.ids.Size) {
			w.overlap = append(w.overlap, fmt.Sprintf("%s (%s) and %s (%s)", ev.ContainerID, nt.ids, id, o.ids))
		}
	}
	w.tasks[ev.ContainerID] = nt
	w.live[ev.ContainerID] = true
}

// check fails unless every task of the job was seen, each ran as a host ID
// of a range of the plugin's pool (65536 IDs each from 2^31, the default),
// read from its process unless batch, and no two live tasks shared IDs.
func (w *usernsWatch) check(t *testing.T, job string, tasks []string, batch bool) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	must.SliceEmpty(t, w.errs)
	must.SliceEmpty(t, w.overlap, must.Sprint("live tasks shared host IDs"))
	seen := map[string]bool{}
	for id, nt := range w.tasks {
		if nt.job != job {
			continue
		}
		seen[nt.task] = true
		must.True(t, nt.fromProc || batch, must.Sprintf("the process of %s ended before it was read", id))
		if !nt.fromProc {
			t.Logf("%s ended before its process was read: its IDs are those of its container's spec", id)
		}
		must.True(t, nt.ids.Size == userns.Size && nt.ids.Start >= 1<<31 && (nt.ids.Start-1<<31)%userns.Size == 0,
			must.Sprintf("%s maps onto %s, not a range of the pool", id, nt.ids))
		must.Eq(t, nt.ids.Start, nt.uid, must.Sprintf("the root of %s is not the first ID of its range on the host", id))
	}
	for _, task := range tasks {
		must.True(t, seen[task], must.Sprintf("no task %s of job %s was created", task, job))
	}
}

// rangeOf is the range the last created task of job named task mapped onto.
func (w *usernsWatch) rangeOf(t *testing.T, job, task string) userns.Range {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var found []userns.Range
	for _, nt := range w.tasks {
		if nt.job == job && nt.task == task {
			found = append(found, nt.ids)
		}
	}
	must.Len(t, 1, found, must.Sprintf("tasks %s of job %s", task, job))
	return found[0]
}

// procIDs are the real UID of process pid and the host range its user
// namespace maps onto, read from the host's /proc.
func procIDs(pid uint32) (uint32, userns.Range, error) {
	uid, err := hostUID(pid)
	if err != nil {
		return 0, userns.Range{}, err
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	if err != nil {
		return 0, userns.Range{}, err
	}
	var inside, start, size uint32
	if _, err := fmt.Sscan(string(data), &inside, &start, &size); err != nil {
		return 0, userns.Range{}, fmt.Errorf("failed to parse the uid_map of %d %q: %w", pid, data, err)
	}
	return uid, userns.Range{Start: start - inside, Size: size}, nil
}

// hostUID is the real UID of process pid on the host.
func hostUID(pid uint32) (uint32, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			var uid uint32
			_, err := fmt.Sscan(rest, &uid)
			return uid, err
		}
	}
	return 0, fmt.Errorf("no Uid line in /proc/%d/status", pid)
}
