//go:build integration

package driver

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestTaskLimits reads each limit option back from inside a container.
func TestTaskLimits(t *testing.T) {
	b := newBed(t)
	testbed.Require(t, true, "tini-static")
	testbed.LeakCheck(t, b.cd)
	t.Run("shm_size", func(t *testing.T) { testShmSize(t, b) })
	t.Run("ulimit", func(t *testing.T) { testUlimit(t, b) })
	t.Run("oom_score_adj", func(t *testing.T) { testOOMScoreAdj(t, b) })
	t.Run("init", func(t *testing.T) { testInit(t, b) })
	t.Run("cpu_hard_limit", func(t *testing.T) { testCPUHardLimit(t, b) })
	t.Run("group_add", func(t *testing.T) { testGroupAdd(t, b) })
	t.Run("refusals leave nothing", func(t *testing.T) { testLimitRefusals(t, b) })
}

func testShmSize(t *testing.T, b *bed) {
	for _, c := range []struct{ size, want string }{{"16m", "size=16384k"}, {"1048576", "size=1024k"}, {"", "size=65536k"}} {
		t.Run(c.want, func(t *testing.T) {
			raw := sh("grep ' /dev/shm ' /proc/mounts; echo END")
			raw.ShmSize = c.size
			out, res := runOutput(t, b, "", newTask(t, raw))
			must.Eq(t, 0, res.ExitCode, must.Sprint(out))
			must.StrContains(t, out, c.want)
		})
	}
}

// testUlimit reads the limits of the task and of a process exec'd in it,
// which shares them as with docker exec.
func testUlimit(t *testing.T, b *bed) {
	h := b.harness(t, "")
	raw := sh("ulimit -Sn; ulimit -Hn; ulimit -Su; echo END; sleep 300")
	raw.Ulimit = []map[string]string{{"nofile": "1024:2048", "nproc": "256"}}
	task := newTask(t, raw)
	start(t, h, task)
	var out string
	eventually(t, "output", func() bool { out = logs(t, task, "stdout"); return strings.Contains(out, "END") })
	must.Eq(t, "1024\n2048\n256\nEND\n", out)
	// Only the hard nofile limit: runc before 1.1.13 (Debian 12 has 1.1.5)
	// lets the Go runtime of `runc init` raise an exec'd process's soft
	// nofile limit to its hard limit (opencontainers/runc#4195).
	res, err := h.ExecTask(task.ID, []string{"sh", "-c", "ulimit -Hn; ulimit -Su"}, 10*time.Second)
	must.NoError(t, err)
	must.Eq(t, "2048\n256\n", string(res.Stdout))
}

// testOOMScoreAdj reads the task's OOM score adjustment. Lowering it
// needs CAP_SYS_RESOURCE: on a host that withholds it from root (as some
// sandboxed VMs do), a negative value must fail the start rather than run
// the task with another value.
func testOOMScoreAdj(t *testing.T, b *bed) {
	for _, c := range []struct {
		plugin string
		adj    int
	}{{"", 500}, {"allow_negative_oom_score_adj = true", -300}} {
		t.Run(strconv.Itoa(c.adj), func(t *testing.T) {
			raw := sh("cat /proc/self/oom_score_adj; echo END")
			raw.OOMScoreAdj = c.adj
			task := newTask(t, raw)
			if c.adj < 0 && !canLowerOOMScoreAdj() {
				t.Log("this host withholds CAP_SYS_RESOURCE: the start must fail")
				h := b.harness(t, c.plugin)
				t.Cleanup(h.MkAllocDir(task, true))
				_, _, err := h.StartTask(task)
				must.Error(t, err)
				b.nothingLeft(t, task)
				return
			}
			out, res := runOutput(t, b, c.plugin, task)
			must.Eq(t, 0, res.ExitCode, must.Sprint(out))
			must.Eq(t, strconv.Itoa(c.adj)+"\nEND\n", out)
		})
	}
}

// canLowerOOMScoreAdj reports whether a root process here may lower its
// OOM score adjustment.
func canLowerOOMScoreAdj() bool {
	return exec.Command("sh", "-c", "echo -1 > /proc/self/oom_score_adj").Run() == nil
}

// testInit runs a task whose main process never waits for children, with
// an orphan that exits: without an init the orphan stays a zombie, with
// init = true PID 1 is tini, which reaps it and forwards signals.
func testInit(t *testing.T, b *bed) {
	tini, err := testbed.LookBin("tini-static")
	must.NoError(t, err)
	plugin := `init_path = "` + tini + `"`
	// the subshell's sleep is orphaned; the main process then execs a
	// sleep, which never waits
	script := "(sleep 0.2 &); echo ready; exec sleep 300"
	states := "sleep 1; cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o stat,args"
	for _, withInit := range []bool{false, true} {
		t.Run("init="+strconv.FormatBool(withInit), func(t *testing.T) {
			h := b.harness(t, plugin)
			raw := sh(script)
			raw.Init = withInit
			task := newTask(t, raw)
			start(t, h, task)
			eventually(t, "ready", func() bool { return strings.Contains(logs(t, task, "stdout"), "ready") })
			res, err := h.ExecTask(task.ID, []string{"sh", "-c", states}, 10*time.Second)
			must.NoError(t, err)
			out := string(res.Stdout)
			pid1, ps, _ := strings.Cut(out, "\n")
			if !withInit {
				must.Eq(t, "sleep 300 ", pid1)
				must.Positive(t, zombies(ps), must.Sprintf("the control case must leave a zombie:\n%s", ps))
				return
			}
			must.Eq(t, "/sbin/docker-init -- sh -c "+script+" ", pid1)
			must.Zero(t, zombies(ps), must.Sprintf("zombies left with init = true:\n%s", ps))
		})
	}
	t.Run("signal forwarded", func(t *testing.T) {
		h := b.harness(t, plugin)
		raw := sh("trap 'echo got-term; exit 3' TERM; echo ready; sleep 300 & wait")
		raw.Init = true
		task := newTask(t, raw)
		start(t, h, task)
		eventually(t, "ready", func() bool { return strings.Contains(logs(t, task, "stdout"), "ready") })
		must.NoError(t, h.SignalTask(task.ID, "SIGTERM"))
		res := wait(t, h, task.ID, 20*time.Second)
		must.Eq(t, 3, res.ExitCode)
		eventually(t, "trap output", func() bool { return strings.Contains(logs(t, task, "stdout"), "got-term") })
	})
}

// zombies counts the processes in Z state in `ps -o stat,args` output.
func zombies(ps string) int {
	n := 0
	for _, l := range strings.Split(ps, "\n") {
		if strings.HasPrefix(l, "Z") {
			n++
		}
	}
	return n
}

// testCPUHardLimit reads the CFS quota from the task's cgroup: Nomad's
// docker driver's share x period x cores.
func testCPUHardLimit(t *testing.T, b *bed) {
	h := b.harness(t, "")
	raw := rawTaskConfig{Command: "sleep", Args: []string{"300"}, CPUHardLimit: true, CPUCFSPeriod: 50000}
	task := newTask(t, raw)
	task.Resources.LinuxResources.PercentTicks = 0.1
	start(t, h, task)
	quota := strconv.Itoa(5000 * runtime.NumCPU())
	id := "web-" + task.AllocID
	v2 := "/sys/fs/cgroup/" + b.cd.Namespace + "/" + id + "/"
	if _, err := os.Stat(v2 + "cgroup.procs"); err == nil {
		must.Eq(t, quota+" 50000", readTrim(t, v2+"cpu.max"))
		return
	}
	dir := filepath.Join("/sys/fs/cgroup/cpu", b.cd.Namespace, id)
	must.Eq(t, quota, readTrim(t, filepath.Join(dir, "cpu.cfs_quota_us")))
	must.Eq(t, "50000", readTrim(t, filepath.Join(dir, "cpu.cfs_period_us")))
}

func testGroupAdd(t *testing.T, b *bed) {
	raw := sh("id -G; grep ^Groups: /proc/self/status; echo END")
	raw.GroupAdd = []string{"app", "4242"}
	task := newTask(t, raw)
	task.User = "nobody"
	out, res := runOutput(t, b, "", task)
	must.Eq(t, 0, res.ExitCode, must.Sprint(out))
	lines := strings.Split(out, "\n")
	must.SliceContainsAll(t, strings.Fields(lines[0]), []string{"65534", "1000", "4242"})
	must.SliceContainsSubset(t, strings.Fields(strings.TrimPrefix(lines[1], "Groups:")), []string{"1000", "4242"})
}

// testLimitRefusals checks that each refused limit names the option and
// leaves no container, snapshot or lease behind.
func testLimitRefusals(t *testing.T, b *bed) {
	missing := filepath.Join(t.TempDir(), "tini")
	cases := []struct {
		name   string
		plugin string
		raw    rawTaskConfig
		err    string
	}{
		{name: "init missing", plugin: `init_path = "` + missing + `"`, raw: rawTaskConfig{Init: true}, err: `init: true needs the plugin's init_path "` + missing + `"`},
		{name: "negative oom_score_adj", raw: rawTaskConfig{OOMScoreAdj: -1}, err: "oom_score_adj: -1 is refused"},
		{name: "unknown group", raw: rawTaskConfig{GroupAdd: []string{"nosuchgroup"}}, err: "group_add: unable to find group nosuchgroup (a group name must be in the image's /etc/group)"},
		{name: "bad ulimit", raw: rawTaskConfig{Ulimit: []map[string]string{{"nofile": "9:1"}}}, err: `ulimit: nofile = "9:1" has a soft limit above its hard limit`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { b.refusedStart(t, c.plugin, c.raw, c.err) })
	}
}
