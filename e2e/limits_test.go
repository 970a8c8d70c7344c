//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// testLimits runs the limits example on the agent, reads back what the
// task reported of its own limits, and its CFS quota from its cgroup.
func testLimits(t *testing.T, e *env) {
	testbed.Require(t, true, "tini-static")
	e.run(t, "limits.nomad.hcl")
	a := e.alloc(t, "limits", "running")
	var out string
	until(t, "limits in logs", func() bool { out = e.cli(t, "alloc", "logs", a.ID); return strings.Contains(out, "\ngroups: ") })
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok {
			lines[k] = v
		}
	}
	must.StrHasPrefix(t, "/sbin/docker-init -- sh -c", lines["pid 1"], must.Sprint(out))
	must.StrContains(t, lines["shm"], "size=131072k")
	must.Eq(t, "1024:2048 nproc: 256", lines["nofile"])
	must.Eq(t, "500", lines["oom_score_adj"])
	must.SliceContainsSubset(t, strings.Fields(lines["groups"]), []string{"65534", "4242"}, must.Sprint(out))

	id := "app-" + a.ID
	quota, period := "", ""
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", e.cd.Namespace, id, "cpu.max")); err == nil {
		quota, period, _ = strings.Cut(strings.TrimSpace(string(b)), " ")
	} else {
		dir := filepath.Join("/sys/fs/cgroup/cpu", e.cd.Namespace, id)
		quota, period = readTrim(t, filepath.Join(dir, "cpu.cfs_quota_us")), readTrim(t, filepath.Join(dir, "cpu.cfs_period_us"))
	}
	must.Eq(t, "50000", period)
	q, err := strconv.Atoi(quota)
	must.NoError(t, err)
	must.Positive(t, q)
	e.stopJob(t, "limits")
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must.NoError(t, err)
	return strings.TrimSpace(string(b))
}
