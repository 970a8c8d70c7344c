//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
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
	// block (the default one) on the host
	must.StrContains(t, out, "uid_map 0 2147483648 65536")
	must.StrContains(t, out, "CapEff:\t0000000000000000")
	must.StrContains(t, out, "NoNewPrivs:\t1")
	must.StrContains(t, out, "Seccomp:\t2")
	must.StrContains(t, out, "rootfs read-only")
	must.StrContains(t, out, "mkfifo: /local/fifo: Operation not permitted")
	must.StrContains(t, get(t, fmt.Sprintf("http://127.0.0.1:%d/", hostPort(t, a, "http").Value)), "hardened")
	e.stopJob(t, "hardened")
}
