//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestRestartMatrix runs example-jobs/restarts.nomad.hcl on a real agent and
// pulls the ground from under its tasks: the plugin is SIGKILLed three times
// in a row, the agent is SIGKILLed and started again, containerd restarts,
// and a worker exits while the plugin (with the agent) is down, another
// while containerd is. The tasks that keep running keep their process, their
// logs and their port, and get no task event; an exit is reported once and
// never leads to a second run.
func TestRestartMatrix(t *testing.T) {
	e := setupRestarts(t)
	e.run(t, "restarts.nomad.hcl")
	web := e.survivor(t, "restarts.web[0]", "web")
	w0 := e.survivor(t, "restarts.worker[0]", "worker")
	w1 := e.survivor(t, "restarts.worker[1]", "worker")
	port := hostPort(t, web.alloc, "http").Value
	must.StrContains(t, get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)), "hello from web")
	workers := []*survivor{w0, w1}

	t.Run("plugin killed three times", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			old := e.pluginPID(t)
			must.NoError(t, syscall.Kill(old, syscall.SIGKILL))
			until(t, "Nomad to launch the plugin again", func() bool {
				p, _ := e.findPlugin()
				return p != 0 && p != old
			})
			e.checkSurvivors(t, web, port, workers...)
		}
	})

	t.Run("agent killed", func(t *testing.T) {
		e.nomad.Kill()
		must.NoError(t, e.nomad.Restart())
		e.checkSurvivors(t, web, port, workers...)
	})

	t.Run("exit while the plugin is down", func(t *testing.T) {
		plugin := e.pluginPID(t)
		e.nomad.Kill() // nothing launches the plugin again until the agent is back
		must.NoError(t, syscall.Kill(plugin, syscall.SIGKILL))
		e.exitWorker(t, w0, 7)
		must.NoError(t, e.nomad.Restart())
		e.checkExit(t, w0, 7, "")
		workers = []*survivor{w1}
		e.checkSurvivors(t, web, port, workers...)
	})

	t.Run("containerd restart", func(t *testing.T) {
		must.NoError(t, e.cd.Restart())
		e.healthy(t)
		e.checkSurvivors(t, web, port, workers...)
	})

	// containerd removes a task whose processes all exited while it was down,
	// exit status included, as it starts again: the exit is reported once as
	// a failure that says so, and the task does not run again
	t.Run("exit while containerd is down", func(t *testing.T) {
		e.cd.StopDaemon(syscall.SIGTERM)
		e.exitWorker(t, w1, 9)
		must.NoError(t, e.cd.StartDaemon())
		e.checkExit(t, w1, 255, "exit status unknown: containerd no longer has task")
		e.healthy(t)
		e.checkSurvivors(t, web, port)
	})

	// the web container removed while the plugin and the agent are down:
	// recovery fails and removes what was left (netns, IP, port maps), so the
	// task Nomad then runs again gets the same container ID, network and port
	t.Run("container deleted behind the driver", func(t *testing.T) {
		plugin := e.pluginPID(t)
		e.nomad.Kill()
		must.NoError(t, syscall.Kill(plugin, syscall.SIGKILL))
		ctx, cancel := context.WithTimeout(e.cd.Context(), time.Minute)
		defer cancel()
		id := "web-" + web.alloc.ID
		must.NoError(t, e.cd.DeleteTask(ctx, id))
		c, err := e.cd.Client.LoadContainer(ctx, id)
		must.NoError(t, err)
		must.NoError(t, c.Delete(ctx, client.WithSnapshotCleanup))

		must.NoError(t, e.nomad.Restart())
		var a *api.Allocation
		untilWithin(t, agentBack, "the web task running again", func() bool {
			a = e.allocNamed(t, "restarts", web.alloc.Name)
			ts := a.TaskStates[web.task]
			return ts != nil && ts.State == "running" && hasEvent(ts, api.TaskStarted, 2)
		})
		must.True(t, hasEvent(a.TaskStates[web.task], "Failed Restoring Task", 1))
		must.NotEq(t, web.pid, e.taskPID(t, web.task, web.alloc.ID))
		must.StrContains(t, get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)), "hello from web")
	})

	e.stopJob(t, "restarts")
	until(t, "the containers removed", func() bool {
		cs, err := e.cd.Client.Containers(e.cd.Context())
		return err == nil && len(cs) == 0
	})
	until(t, "no network leftovers", func() bool { return len(testbed.NetLeaks(e.cni.Scope(""))) == 0 })
}

// agentBack bounds the waits for what needs the client, after its agent
// restarted, registered with the server again: an attempt made before the
// server is leader again is refused, and Nomad tries again 15 to 30s later.
const agentBack = 90 * time.Second

// hasEvent tells whether ts has n events of type typ.
func hasEvent(ts *api.TaskState, typ string, n int) bool {
	c := 0
	for _, ev := range ts.Events {
		if ev.Type == typ {
			c++
		}
	}
	return c == n
}

// restartEnv is env with one API client, whose connections are reused (the
// agent limits them per client address).
type restartEnv struct {
	*env
	api *api.Client
}

// setupRestarts is a containerd (checked for leaks) with busybox imported,
// the driver's bridge network (checked for leaks) and an agent; no registry.
func setupRestarts(t *testing.T) *restartEnv {
	t.Helper()
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc", "nomad", "iptables", "ip")
	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	const image = "testbed.local/busybox:restarts"
	testbed.ImportBusybox(t, cd, image)
	cni := testbed.NewCNINet(t)
	testbed.NetLeakCheck(t, cni.Scope(""))
	plugin := testbed.ContainerdPluginConfig(cd) +
		fmt.Sprintf("cni {\n  bin_dir = %q\n  conf_dir = %q\n  bridge_name = %q\n  subnet = %q\n}\n", cni.BinDir, cni.ConfDir, cni.Bridge, cni.Subnet)
	n := testbed.StartNomad(t, testbed.NomadConfig{PluginConfig: plugin})
	return &restartEnv{env: &env{cd: cd, nomad: n, image: image, cni: cni}, api: n.API()}
}

// survivor is a running task with what must not change while it runs.
type survivor struct {
	alloc  *api.Allocation
	task   string
	pid    uint32
	events int
}

// survivor waits until the allocation named name runs its task and records
// its PID and task events.
func (e *restartEnv) survivor(t *testing.T, name, task string) *survivor {
	t.Helper()
	var a *api.Allocation
	until(t, name+" running", func() bool {
		a = e.allocNamed(t, "restarts", name)
		return a != nil && a.ClientStatus == "running" && a.TaskStates[task] != nil && a.TaskStates[task].State == "running"
	})
	until(t, name+" logging", func() bool { return e.logs(t, a.ID, task) != "" })
	return &survivor{alloc: a, task: task, pid: e.taskPID(t, task, a.ID), events: len(a.TaskStates[task].Events)}
}

func (e *restartEnv) allocNamed(t *testing.T, jobID, name string) *api.Allocation {
	t.Helper()
	stubs, _, err := e.api.Jobs().Allocations(jobID, true, nil)
	must.NoError(t, err)
	for _, s := range stubs {
		if s.Name == name {
			a, _, err := e.api.Allocations().Info(s.ID, nil)
			must.NoError(t, err)
			return a
		}
	}
	return nil
}

func (e *restartEnv) logs(t *testing.T, allocID, task string) string {
	t.Helper()
	return e.cli(t, "alloc", "logs", allocID, task)
}

// checkSurvivors waits until Nomad reaches each task through the driver
// again (an exec succeeds), then checks that it runs the same process with
// no new task event, that the web task's logs grow with every line once and
// that its port answers.
func (e *restartEnv) checkSurvivors(t *testing.T, web *survivor, port int, workers ...*survivor) {
	t.Helper()
	for _, s := range append([]*survivor{web}, workers...) {
		untilWithin(t, agentBack, "an exec into "+s.alloc.Name, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			return e.nomad.Command(ctx, "alloc", "exec", "-task", s.task, s.alloc.ID, "true").Run() == nil
		})
		must.Eq(t, s.pid, e.taskPID(t, s.task, s.alloc.ID), must.Sprintf("%s runs another process", s.alloc.Name))
		a, _, err := e.api.Allocations().Info(s.alloc.ID, nil)
		must.NoError(t, err)
		ts := a.TaskStates[s.task]
		must.Eq(t, "running", ts.State)
		must.Eq(t, uint64(0), ts.Restarts)
		var added []string
		for _, ev := range ts.Events[s.events:] {
			added = append(added, ev.Type+": "+ev.DisplayMessage)
		}
		must.SliceEmpty(t, added, must.Sprintf("new task events of %s", s.alloc.Name))
	}
	before := strings.Count(e.logs(t, web.alloc.ID, web.task), "beat-")
	var out string
	until(t, "new log lines", func() bool {
		out = e.logs(t, web.alloc.ID, web.task)
		return strings.Count(out, "beat-") > before+1
	})
	checkBeats(t, out)
	must.StrContains(t, get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)), "hello from web")
}

// checkBeats counts every heartbeat line the web task printed: beat-0 to
// the last one, each once and in order, none lost or doubled by a restart.
func checkBeats(t *testing.T, out string) {
	t.Helper()
	next := 0
	for _, line := range strings.Split(out, "\n") {
		n, ok := strings.CutPrefix(line, "beat-")
		if !ok {
			continue
		}
		must.Eq(t, strconv.Itoa(next), n, must.Sprintf("heartbeat %d lost or doubled in the logs", next))
		next++
	}
	must.Positive(t, next)
}

// exitWorker has a worker exit with code and waits until its process is gone.
func (e *restartEnv) exitWorker(t *testing.T, w *survivor, code int) {
	t.Helper()
	file := filepath.Join(e.nomad.Config.DataDir, "alloc", w.alloc.ID, "alloc", "exit-code")
	must.NoError(t, os.WriteFile(file, []byte(strconv.Itoa(code)+"\n"), 0o644))
	until(t, "the worker's exit", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", w.pid))
		return os.IsNotExist(err)
	})
}

// checkExit waits until the worker's allocation failed and checks that its
// one exit has the code (and message), and that it ran once.
func (e *restartEnv) checkExit(t *testing.T, w *survivor, code int, message string) {
	t.Helper()
	var a *api.Allocation
	untilWithin(t, agentBack, w.alloc.Name+" failed", func() bool {
		a = e.allocNamed(t, "restarts", w.alloc.Name)
		return a.ClientStatus == "failed"
	})
	must.Eq(t, w.alloc.ID, a.ID)
	ts := a.TaskStates[w.task]
	must.Eq(t, uint64(0), ts.Restarts)
	var exits []*api.TaskEvent
	for _, ev := range ts.Events {
		must.NotEq(t, api.TaskRestarting, ev.Type, must.Sprintf("restarted: %s", ev.DisplayMessage))
		if ev.Type == api.TaskTerminated {
			exits = append(exits, ev)
		}
	}
	must.Len(t, 1, exits, must.Sprintf("terminated events of %s", a.Name))
	must.Eq(t, code, exits[0].ExitCode, must.Sprintf("exit: %s", exits[0].DisplayMessage))
	if message != "" {
		must.StrContains(t, exits[0].Details["exit_message"], message)
	}
	logs := e.logs(t, a.ID, w.task)
	must.Eq(t, 1, strings.Count(logs, "started"), must.Sprintf("logs: %q", logs))
	if code != 255 {
		must.StrContains(t, logs, fmt.Sprintf("exiting with %d", code))
	}
}

// healthy waits until the agent sees the driver healthy again.
func (e *restartEnv) healthy(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must.NoError(t, testbed.WaitNomad(ctx, e.nomad.Addr))
}

// pluginPID is the PID of the plugin process the agent uses.
func (e *restartEnv) pluginPID(t *testing.T) int {
	t.Helper()
	var pid int
	until(t, "the plugin process", func() bool {
		var err error
		pid, err = e.findPlugin()
		must.NoError(t, err)
		return pid != 0
	})
	return pid
}

// findPlugin finds the live process that runs the plugin binary for this
// agent: its child, or, after the agent was killed and started again, the
// plugin it reattached to. It goes by PID, executable and the agent's
// marker in the environment, never by name.
func (e *restartEnv) findPlugin() (int, error) {
	bin, err := filepath.EvalSymlinks(filepath.Join(e.nomad.Config.PluginDir, testbed.PluginBinary))
	if err != nil {
		return 0, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != bin {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !strings.Contains("\x00"+string(env), "\x00"+e.nomad.Marker()+"\x00") {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ...: comm may hold spaces
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] != "Z" {
			return pid, nil
		}
	}
	return 0, nil
}
