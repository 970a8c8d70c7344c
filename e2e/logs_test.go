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

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// logLines is how many numbered lines example-jobs/logs.nomad.hcl prints.
const logLines = 200000

// TestDriverLogs runs example-jobs/logs.nomad.hcl on an agent whose plugin
// collects logs itself: Nomad starts no logmon, and the log files, `nomad
// alloc logs -f -stdout` (from the start) and `-tail` show every line
// exactly once across rotation and a plugin SIGKILLed while the task
// prints.
func TestDriverLogs(t *testing.T) {
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc", "nomad")
	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	const image = "testbed.local/busybox:logs"
	testbed.ImportBusybox(t, cd, image)
	plugin := testbed.ContainerdPluginConfig(cd) + "default_network_mode = \"host\"\n" +
		"logging {\n  collector     = \"driver\"\n  max_file_size = 1\n}\n"
	n := testbed.StartNomad(t, testbed.NomadConfig{PluginConfig: plugin})
	e := &restartEnv{env: &env{cd: cd, nomad: n, image: image}, api: n.API()}

	e.run(t, "logs.nomad.hcl")
	a := e.alloc(t, "logs", "running")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var followed testbed.SyncBuffer
	follow := n.Command(ctx, "alloc", "logs", "-f", "-stdout", a.ID, "app")
	follow.Stdout = &followed
	must.NoError(t, follow.Start())
	defer func() { cancel(); _ = follow.Wait() }()

	until(t, "the first lines", func() bool { return strings.Contains(followed.String(), "\n10000\n") })
	old := e.pluginPID(t)
	must.NoError(t, syscall.Kill(old, syscall.SIGKILL))
	until(t, "Nomad to launch the plugin again", func() bool {
		p, _ := e.findPlugin()
		return p != 0 && p != old
	})

	last := fmt.Sprintf("\n%d\n", logLines)
	untilWithin(t, time.Minute, "every line in `nomad alloc logs -f`", func() bool { return strings.Contains(followed.String(), last) })
	checkNumbered(t, followed.String(), logLines)
	tail := e.cli(t, "alloc", "logs", "-tail", "-n", "3", a.ID, "app")
	must.Eq(t, fmt.Sprintf("%d\n%d\n%d\n", logLines-2, logLines-1, logLines), tail)
	logDir := filepath.Join(n.Config.DataDir, "alloc", a.ID, "alloc", "logs")
	files := func() string {
		var all strings.Builder
		for i := 0; ; i++ {
			b, err := os.ReadFile(filepath.Join(logDir, "app.stdout."+strconv.Itoa(i)))
			if os.IsNotExist(err) {
				return all.String()
			}
			must.NoError(t, err)
			all.Write(b)
		}
	}
	checkNumbered(t, files(), logLines)
	_, err := os.Stat(filepath.Join(logDir, "app.stdout.1"))
	must.NoError(t, err, must.Sprint("1.3 MB in 1 MB files must rotate"))
	must.Eq(t, 0, e.logmons(t), must.Sprint("Nomad started a logmon although the driver collects logs"))

	// the agent and the plugin are down while the task prints 100000 more
	// lines: it is not held up, and the next plugin collects them
	cancel()
	_ = follow.Wait()
	pid := e.pluginPID(t)
	e.nomad.Kill()
	must.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	allocDir := filepath.Join(n.Config.DataDir, "alloc", a.ID)
	must.NoError(t, os.WriteFile(filepath.Join(allocDir, "alloc", "more"), nil, 0o644))
	until(t, "the task printing while no agent or plugin runs", func() bool {
		b, err := os.ReadFile(filepath.Join(allocDir, "app", "app.stdout.spool"))
		return err == nil && strings.HasSuffix(string(b), "\n300000\n")
	})
	must.StrNotContains(t, files(), "\n300000\n", must.Sprint("a collector ran while the plugin was down"))
	must.NoError(t, e.nomad.Restart())
	untilWithin(t, agentBack, "the lines printed while the agent was down", func() bool { return strings.HasSuffix(files(), "\n300000\n") })
	checkNumbered(t, files(), 300000)
	untilWithin(t, agentBack, "`nomad alloc logs -tail` after the agent restart", func() bool {
		out, err := n.Command(ctx2(t), "alloc", "logs", "-tail", "-n", "2", a.ID, "app").Output()
		return err == nil && string(out) == "299999\n300000\n"
	})

	must.Eq(t, 0, e.logmons(t), must.Sprint("Nomad started a logmon although the driver collects logs"))
	info, _, err := n.API().Allocations().Info(a.ID, nil)
	must.NoError(t, err)
	must.Eq(t, "running", info.ClientStatus)
	must.Eq(t, uint64(0), info.TaskStates["app"].Restarts)
	e.stopJob(t, "logs")
}

// ctx2 is a context for one CLI call.
func ctx2(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkNumbered checks that out holds the lines 1 to n, each once, in order.
func checkNumbered(t *testing.T, out string, n int) {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i := 1; i <= n; i++ {
		if i > len(got) {
			t.Fatalf("lines %d to %d are missing", i, n)
		}
		if got[i-1] != strconv.Itoa(i) {
			t.Fatalf("line %d is %q, want %d (lines lost or doubled); output begins %q", i, got[i-1], i, out[:min(len(out), 200)])
		}
	}
	must.Eq(t, n, len(got), must.Sprint("lines beyond the last one printed"))
}

// logmons counts the agent's logmon processes.
func (e *restartEnv) logmons(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	must.NoError(t, err)
	count := 0
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmd), "logmon") {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err == nil && strings.Contains("\x00"+string(env), "\x00"+e.nomad.Marker()+"\x00") {
			count++
		}
	}
	return count
}
