//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// seccompDir holds the example profiles; the agent's plugin config allows it.
func seccompDir() string { return filepath.Join(testbed.RepoRoot(), "example-jobs", "seccomp") }

// testHardened runs the hardened service: a user namespace of its own, no
// capabilities, no new privileges, a read-only root and the example seccomp
// profile (which, unlike the default one, refuses fifos), and it still
// serves.
func testHardened(t *testing.T, e *env) {
	e.run(t, "hardened.nomad.hcl", "seccomp_profile="+filepath.Join(seccompDir(), "hardened.json"))
	a := e.alloc(t, "hardened", "running")
	var out string
	until(t, "status report in logs", func() bool {
		out = e.cli(t, "alloc", "logs", a.ID, "web") + e.cli(t, "alloc", "logs", "-stderr", a.ID, "web")
		return strings.Contains(out, "mkfifo")
	})
	// root in the task is the first ID of a range of the plugin's userns
	// block (the default one, 65536 IDs each from 2^31) on the host
	m := regexp.MustCompile(`uid_map 0 (\d+) 65536`).FindStringSubmatch(out)
	must.SliceLen(t, 2, m, must.Sprintf("no uid_map of a range in %q", out))
	start, err := strconv.ParseUint(m[1], 10, 32)
	must.NoError(t, err)
	must.True(t, start >= 1<<31 && (start-1<<31)%65536 == 0, must.Sprintf("uid_map starts at %d, not at a range of the pool", start))
	// and the host sees the task's process run as that ID
	uid, err := hostUID(e.taskPID(t, "web", a.ID))
	must.NoError(t, err)
	must.Eq(t, start, uint64(uid), must.Sprint("the task's process does not run as the first ID of its range on the host"))
	must.StrContains(t, out, "CapEff:\t0000000000000000")
	must.StrContains(t, out, "NoNewPrivs:\t1")
	must.StrContains(t, out, "Seccomp:\t2")
	must.StrContains(t, out, "rootfs read-only")
	must.StrContains(t, out, "mkfifo: /local/fifo: Operation not permitted")
	must.StrContains(t, get(t, fmt.Sprintf("http://127.0.0.1:%d/", hostPort(t, a, "http").Value)), "hardened")
	e.stopJob(t, "hardened")
}

// testUserNSBinds runs a task in a user namespace of its own whose root
// writes in an idmapped bind of a host directory: the file is the host
// root's, while the same directory bound as it is keeps its root-owned
// file out of the task's reach.
func testUserNSBinds(t *testing.T, e *env) {
	input := filepath.Join(e.hostDir, "input")
	before, err := os.ReadFile(input)
	must.NoError(t, err)
	e.run(t, "userns-binds.nomad.hcl", "host_dir="+e.hostDir)
	a := e.alloc(t, "userns-binds", "complete")
	out := e.cli(t, "alloc", "logs", a.ID)
	must.StrContains(t, out, "uid 0")
	must.StrContains(t, out, "host-file-refused")
	after, err := os.ReadFile(input)
	must.NoError(t, err)
	must.Eq(t, string(before), string(after))
	st, err := os.Stat(filepath.Join(e.hostDir, "userns-output"))
	must.NoError(t, err)
	must.Eq(t, 0, st.Sys().(*syscall.Stat_t).Uid, must.Sprint("the task's root wrote a file that the host's root does not own"))
	must.StrContains(t, e.cli(t, "alloc", "fs", a.ID, "alloc/data/userns-output"), "by-task")
	e.stopJob(t, "userns-binds")
}
