//go:build integration

package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
)

// TestDriver runs the task lifecycle against a hermetic containerd through
// Nomad's plugin harness; subtests share the daemon.
func TestDriver(t *testing.T) {
	b := newCheckedBed(t)

	t.Run("fingerprint", func(t *testing.T) { testFingerprint(t, b) })
	t.Run("exit code and logs", func(t *testing.T) { testExitCode(t, b) })
	t.Run("kill signal", func(t *testing.T) { testKillSignal(t, b) })
	t.Run("kill timeout", func(t *testing.T) { testKillTimeout(t, b) })
	t.Run("destroy", func(t *testing.T) { testDestroy(t, b) })
	t.Run("exec", func(t *testing.T) { testExec(t, b) })
	t.Run("signal", func(t *testing.T) { testSignal(t, b) })
	t.Run("stats", func(t *testing.T) { testStats(t, b) })
	t.Run("oom", func(t *testing.T) { testOOM(t, b) })
	t.Run("recover", func(t *testing.T) { testRecover(t, b) })
	t.Run("recover exited", func(t *testing.T) { testRecoverExited(t, b) })
	t.Run("spec", func(t *testing.T) { testSpec(t, b) })
	t.Run("resources", func(t *testing.T) { testResources(t, b) })
	t.Run("caps", func(t *testing.T) { testCaps(t, b) })
	t.Run("binds", func(t *testing.T) { testBinds(t, b) })
	t.Run("refusals leave nothing", func(t *testing.T) { testRefusals(t, b) })
}

func testFingerprint(t *testing.T, b *bed) {
	h := b.harness(t, "cni {\n bin_dir = \"/run/ndc-no-cni\"\n}")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fp := firstFingerprint(ctx, t, h)
	must.Eq(t, drivers.HealthStateHealthy, fp.Health, must.Sprint(fp.HealthDescription))
	v, ok := fp.Attributes["driver.containerd.version"].GetString()
	must.True(t, ok)
	must.StrHasPrefix(t, "2.", strings.TrimPrefix(v, "v"))
	rt, _ := fp.Attributes["driver.containerd.runtime"].GetString()
	must.Eq(t, "io.containerd.runc.v2", rt)
	cni, _ := fp.Attributes["driver.containerd.cni"].GetBool()
	must.False(t, cni) // healthy without CNI plugins; the attribute says they are missing
	missing, _ := fp.Attributes["driver.containerd.cni.missing"].GetString()
	must.StrContains(t, missing, "bridge")

	down := b.harness(t, "address = \"/run/ndc-no-such.sock\"")
	fp = firstFingerprint(ctx, t, down)
	must.Eq(t, drivers.HealthStateUnhealthy, fp.Health)
	must.StrContains(t, fp.HealthDescription, "/run/ndc-no-such.sock")

	noRuntime := b.harness(t, "runtime = \"io.containerd.nope.v1\"\nallow_runtimes = [\"io.containerd.nope.v1\"]")
	fp = firstFingerprint(ctx, t, noRuntime)
	must.Eq(t, drivers.HealthStateUnhealthy, fp.Health)
	must.StrContains(t, fp.HealthDescription, "io.containerd.nope.v1")
}

func testExitCode(t *testing.T, b *bed) {
	h := b.harness(t, "")
	task := newTask(t, sh("echo to-stdout; echo to-stderr >&2; exit 3"))
	start(t, h, task)
	res := wait(t, h, task.ID, 30*time.Second)
	must.Eq(t, 3, res.ExitCode)
	must.False(t, res.OOMKilled)
	eventually(t, "stdout", func() bool { return strings.Contains(logs(t, task, "stdout"), "to-stdout") })
	eventually(t, "stderr", func() bool { return strings.Contains(logs(t, task, "stderr"), "to-stderr") })

	st, err := h.InspectTask(task.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateExited, st.State)
	must.Eq(t, "web-"+task.AllocID, st.DriverAttributes["container_id"])
	must.StrHasPrefix(t, "sha256:", st.DriverAttributes["image_digest"])
}

func testKillSignal(t *testing.T, b *bed) {
	h, task := startReady(t, b, "trap 'echo got-int; exit 7' INT; echo ready; while true; do sleep 0.1; done")
	must.Less(t, 10*time.Second, stopTook(t, h, task.ID, 20*time.Second, "SIGINT"), must.Sprint("StopTask waited for the kill timeout although the task exited"))
	res := wait(t, h, task.ID, 5*time.Second)
	must.Eq(t, 7, res.ExitCode)
	eventually(t, "trap output", func() bool { return strings.Contains(logs(t, task, "stdout"), "got-int") })
}

func testKillTimeout(t *testing.T, b *bed) {
	h, task := startReady(t, b, "trap '' TERM; echo ready; while true; do sleep 0.1; done")
	must.Greater(t, 1900*time.Millisecond, stopTook(t, h, task.ID, 2*time.Second, "SIGTERM"))
	res := wait(t, h, task.ID, 5*time.Second)
	must.Eq(t, 9, res.Signal)
	must.Eq(t, 137, res.ExitCode)
	must.False(t, res.OOMKilled)
}

func testDestroy(t *testing.T, b *bed) {
	h := b.harness(t, "")
	task := newTask(t, sh("sleep 300"))
	start(t, h, task)
	id := "web-" + task.AllocID
	must.True(t, b.containerExists(t, id))

	err := h.DestroyTask(task.ID, false)
	must.Error(t, err)
	must.StrContains(t, err.Error(), "running")
	must.True(t, b.containerExists(t, id))

	must.NoError(t, h.DestroyTask(task.ID, true))
	must.False(t, b.containerExists(t, id))
	must.False(t, b.snapshotExists(t, id))
	err = h.DestroyTask(task.ID, true)
	must.True(t, errors.Is(err, drivers.ErrTaskNotFound) || strings.Contains(err.Error(), drivers.ErrTaskNotFound.Error()), must.Sprint(err))
}

func testExec(t *testing.T, b *bed) {
	h := b.harness(t, "")
	task := newTask(t, sh("sleep 300"))
	start(t, h, task)

	res, err := h.ExecTask(task.ID, []string{"sh", "-c", "echo $((6*7)); echo oops >&2; exit 4"}, 10*time.Second)
	must.NoError(t, err)
	must.Eq(t, "42\n", string(res.Stdout))
	must.Eq(t, "oops\n", string(res.Stderr))
	must.Eq(t, 4, res.ExitResult.ExitCode)

	r := h.Exec(t, task.ID, "tty && echo has-tty", true, "")
	must.Eq(t, 0, r.Code)
	must.StrContains(t, r.Stdout, "has-tty")
	r = h.Exec(t, task.ID, "cat", false, "piped stdin")
	must.Eq(t, 0, r.Code)
	must.Eq(t, "piped stdin", r.Stdout)
	h.ExecConformance(t, task.ID)
}

func testSignal(t *testing.T, b *bed) {
	h, task := startReady(t, b, "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done")
	must.NoError(t, h.SignalTask(task.ID, "SIGUSR1"))
	eventually(t, "signal handled", func() bool { return strings.Contains(logs(t, task, "stdout"), "got-usr1") })
	err := h.SignalTask(task.ID, "SIGNOPE")
	must.Error(t, err)
	must.StrContains(t, err.Error(), "SIGNOPE")
}

func testStats(t *testing.T, b *bed) {
	h := b.harness(t, "")
	task := newTask(t, sh("while true; do :; done"))
	start(t, h, task)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := h.TaskStats(ctx, task.ID, 200*time.Millisecond)
	must.NoError(t, err)
	var cpuSeen, memSeen bool
	for u := range ch {
		if u.ResourceUsage.CpuStats.Percent > 0 {
			cpuSeen = true
		}
		if u.ResourceUsage.MemoryStats.Usage > 0 || u.ResourceUsage.MemoryStats.RSS > 0 {
			memSeen = true
		}
		if cpuSeen && memSeen {
			break
		}
	}
	must.True(t, cpuSeen, must.Sprint("no CPU usage reported for a busy task"))
	must.True(t, memSeen, must.Sprint("no memory usage reported"))
}

func testOOM(t *testing.T, b *bed) {
	h := b.harness(t, "")
	hog := newTask(t, sh("dd if=/dev/zero of=/dev/null bs=256M count=1"))
	hog.Resources.NomadResources.Memory.MemoryMB = 32
	start(t, h, hog)
	res := wait(t, h, hog.ID, 60*time.Second)
	must.True(t, res.OOMKilled, must.Sprintf("exit %+v", res))

	killed := newTask(t, sh("sleep 300"))
	start(t, h, killed)
	must.NoError(t, h.StopTask(killed.ID, time.Second, "SIGKILL"))
	res = wait(t, h, killed.ID, 10*time.Second)
	must.False(t, res.OOMKilled)
	must.Eq(t, 9, res.Signal)
}

func testRecover(t *testing.T, b *bed) {
	h := b.harness(t, "")
	task := newTask(t, sh("i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"))
	handle := start(t, h, task)
	st, err := h.InspectTask(task.ID)
	must.NoError(t, err)
	pid := st.DriverAttributes["pid"]
	must.NotEq(t, "0", pid)

	// the plugin goes away; a new one recovers the task from its handle
	h.Kill()
	h2 := b.harness(t, "")
	must.NoError(t, h2.RecoverTask(handle))
	st, err = h2.InspectTask(task.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, st.State)
	must.Eq(t, pid, st.DriverAttributes["pid"])
	must.True(t, processAlive(t, pid))

	before := strings.Count(logs(t, task, "stdout"), "tick-")
	eventually(t, "logs keep flowing", func() bool { return strings.Count(logs(t, task, "stdout"), "tick-") > before+2 })

	must.NoError(t, h2.StopTask(task.ID, 5*time.Second, "SIGKILL"))
	res := wait(t, h2, task.ID, 10*time.Second)
	must.Eq(t, 9, res.Signal)
	must.NoError(t, h2.DestroyTask(task.ID, true))
}

func testRecoverExited(t *testing.T, b *bed) {
	h := b.harness(t, "")
	marker := "/alloc/ran"
	task := newTask(t, sh("echo x >> "+marker+"; sleep 1; exit 5"))
	handle := start(t, h, task)
	h.Kill()
	time.Sleep(2 * time.Second) // the task exits while no plugin runs

	h2 := b.harness(t, "")
	must.NoError(t, h2.RecoverTask(handle))
	res := wait(t, h2, task.ID, 10*time.Second)
	must.Eq(t, 5, res.ExitCode)
	b2, err := os.ReadFile(filepath.Join(task.TaskDir().SharedAllocDir, "ran"))
	must.NoError(t, err)
	must.Eq(t, "x\n", string(b2), must.Sprint("the task ran more than once"))
	must.NoError(t, h2.DestroyTask(task.ID, true))
}

func processAlive(t *testing.T, pid string) bool {
	t.Helper()
	_, err := strconv.Atoi(pid)
	must.NoError(t, err)
	_, err = os.Stat("/proc/" + pid)
	return err == nil
}

// TestSetConfigKeepsRunningTasks: Nomad may call SetConfig again while
// tasks run; they stay manageable through the connection they were started
// with: inspected, stopped and destroyed, with nothing left behind.
func TestSetConfigKeepsRunningTasks(t *testing.T) {
	b := newCheckedBed(t)
	h := b.harness(t, "")
	task := newTask(t, onHost(sh("trap 'exit 3' TERM; sleep 300 & wait")))
	start(t, h, task)
	b.setConfig(t, h, "")

	status, err := h.InspectTask(task.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, status.State)
	must.NoError(t, h.StopTask(task.ID, 10*time.Second, "SIGTERM"))
	must.Eq(t, 3, wait(t, h, task.ID, 20*time.Second).ExitCode)
	must.NoError(t, h.DestroyTask(task.ID, false))
	b.nothingLeft(t, task)
}
