//go:build integration

package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// driverLogs is the plugin config of a driver that collects logs itself,
// into files of at most 1 MiB.
const driverLogs = "logging {\n collector = \"driver\"\n max_files = 100\n max_file_size = 1\n}\n"

// TestDriverLogs runs tasks whose output the driver collects (no logmon)
// and counts every line they print, across rotation, a plugin killed
// mid-stream and a task that prints and exits while no collector runs.
func TestDriverLogs(t *testing.T) {
	b := newCheckedBed(t)
	t.Run("rotation", func(t *testing.T) { testLogRotation(t, b) })
	t.Run("plugin killed mid-stream", func(t *testing.T) { testLogsAcrossPluginKill(t, b) })
	t.Run("task not blocked while the collector is down", func(t *testing.T) { testLogsCollectorDown(t, b) })
	t.Run("planted symlink not followed", func(t *testing.T) { testLogsPlantedSymlink(t, b) })
}

// startCollected starts task under h with its alloc dir and no logmon.
func startCollected(t *testing.T, h *testbed.Harness, task *drivers.TaskConfig) *drivers.TaskHandle {
	t.Helper()
	t.Cleanup(h.MkAllocDir(task, false))
	handle, _, err := h.StartTask(task)
	must.NoError(t, err)
	impl := h.Impl()
	t.Cleanup(func() { _ = impl.DestroyTask(task.ID, true) })
	return handle
}

// killPlugin makes h's plugin go away as a killed plugin process would:
// its connection and its collector stop.
func killPlugin(h *testbed.Harness) {
	h.Kill()
	h.Impl().(*Driver).Shutdown()
}

// collectedLog is a stream's log files in index order, concatenated, and
// how many files there are.
func collectedLog(t *testing.T, task *drivers.TaskConfig, stream string) (string, int) {
	t.Helper()
	dir := task.TaskDir().LogDir
	entries, err := os.ReadDir(dir)
	must.NoError(t, err)
	prefix := task.Name + "." + stream + "."
	var idx []int
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), prefix)); err == nil && strings.HasPrefix(e.Name(), prefix) {
			must.True(t, e.Type().IsRegular(), must.Sprintf("%s is not a regular file", e.Name()))
			idx = append(idx, n)
		}
	}
	sort.Ints(idx)
	var out strings.Builder
	for _, i := range idx {
		data, err := os.ReadFile(filepath.Join(dir, prefix+strconv.Itoa(i)))
		must.NoError(t, err)
		out.Write(data)
	}
	return out.String(), len(idx)
}

// checkNumbered checks that out is the lines from..to, each exactly once,
// in order, and names the first line that differs.
func checkNumbered(t *testing.T, out string, from, to int) {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i := from; i <= to; i++ {
		k := i - from
		if k >= len(got) {
			t.Fatalf("lines %d to %d are missing (got %d lines)", i, to, len(got))
		}
		if got[k] != strconv.Itoa(i) {
			t.Fatalf("line %d is %q, want %d (lines lost or doubled)", k+1, got[k], i)
		}
	}
	must.Eq(t, to-from+1, len(got), must.Sprint("lines beyond the last one printed"))
	must.True(t, strings.HasSuffix(out, "\n"))
}

// spoolsGone checks that a destroyed task left no spool behind.
func spoolsGone(t *testing.T, task *drivers.TaskConfig) {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(task.TaskDir().Dir, task.Name+".*"))
	must.NoError(t, err)
	must.SliceEmpty(t, left, must.Sprint("spool files left after destroy"))
}

func testLogRotation(t *testing.T, b *bed) {
	h := b.harness(t, driverLogs)
	caps, err := h.Impl().Capabilities()
	must.NoError(t, err)
	must.True(t, caps.DisableLogCollection, must.Sprint("Nomad would start a logmon beside the driver's collector"))
	task := newTask(t, sh("seq 1 400000; seq 1 1000 >&2"))
	startCollected(t, h, task)
	must.Eq(t, 0, wait(t, h, task.ID, 60*time.Second).ExitCode)
	must.NoError(t, h.DestroyTask(task.ID, true))
	out, files := collectedLog(t, task, "stdout")
	checkNumbered(t, out, 1, 400000)
	must.Greater(t, 2, files, must.Sprint("2.7 MB in 1 MiB files must rotate"))
	errOut, _ := collectedLog(t, task, "stderr")
	checkNumbered(t, errOut, 1, 1000)
	spoolsGone(t, task)
}

func testLogsAcrossPluginKill(t *testing.T, b *bed) {
	h := b.harness(t, driverLogs)
	// 300000 lines in 30 bursts, about three seconds
	task := newTask(t, sh("for i in $(seq 0 29); do seq $((i*10000+1)) $((i*10000+10000)); sleep 0.1; done"))
	handle := startCollected(t, h, task)
	eventually(t, "first lines collected", func() bool {
		out, _ := collectedLog(t, task, "stdout")
		return strings.Contains(out, "\n5000\n")
	})
	killPlugin(h)
	time.Sleep(time.Second) // the task prints while no collector runs
	h2 := b.harness(t, driverLogs)
	must.NoError(t, h2.RecoverTask(handle))
	must.Eq(t, 0, wait(t, h2, task.ID, 60*time.Second).ExitCode)
	must.NoError(t, h2.DestroyTask(task.ID, true))
	out, files := collectedLog(t, task, "stdout")
	checkNumbered(t, out, 1, 300000)
	must.Greater(t, 1, files)
	spoolsGone(t, task)
}

func testLogsCollectorDown(t *testing.T, b *bed) {
	h := b.harness(t, driverLogs)
	// 2 MB, twice the largest pipe buffer: a pipe nobody reads would block
	// the task before it reaches the marker
	task := newTask(t, sh("until [ -e /alloc/cue ]; do sleep 0.1; done; seq 1 300000; echo printed > /alloc/printed"))
	handle := startCollected(t, h, task)
	killPlugin(h)
	cue(t, task)
	waitFor(t, 30*time.Second, "the task prints everything while no collector runs", func() bool {
		_, err := os.Stat(filepath.Join(task.TaskDir().SharedAllocDir, "printed"))
		return err == nil
	})
	out, _ := collectedLog(t, task, "stdout")
	must.StrNotContains(t, out, "300000\n", must.Sprint("a collector ran while the plugin was down"))

	h2 := b.harness(t, driverLogs)
	must.NoError(t, h2.RecoverTask(handle))
	must.Eq(t, 0, wait(t, h2, task.ID, 30*time.Second).ExitCode)
	must.NoError(t, h2.DestroyTask(task.ID, true))
	out, _ = collectedLog(t, task, "stdout")
	checkNumbered(t, out, 1, 300000)
	spoolsGone(t, task)
}

func testLogsPlantedSymlink(t *testing.T, b *bed) {
	h := b.harness(t, driverLogs)
	task := newTask(t, sh("echo hello; echo oops >&2"))
	t.Cleanup(h.MkAllocDir(task, false))
	host := filepath.Join(t.TempDir(), "host-file")
	must.NoError(t, os.WriteFile(host, []byte("host\n"), 0o644))
	for _, stream := range []string{"stdout", "stderr"} {
		must.NoError(t, os.Symlink(host, filepath.Join(task.TaskDir().LogDir, fmt.Sprintf("%s.%s.0", task.Name, stream))))
	}
	_, _, err := h.StartTask(task)
	must.NoError(t, err)
	must.Eq(t, 0, wait(t, h, task.ID, 30*time.Second).ExitCode)
	must.NoError(t, h.DestroyTask(task.ID, true))
	data, err := os.ReadFile(host)
	must.NoError(t, err)
	must.Eq(t, "host\n", string(data), must.Sprint("task output followed a planted symlink"))
	out, _ := collectedLog(t, task, "stdout")
	must.Eq(t, "hello\n", out)
	errOut, _ := collectedLog(t, task, "stderr")
	must.Eq(t, "oops\n", errOut)
}
