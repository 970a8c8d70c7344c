package preflight

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// neededControllers are the cgroup controllers the driver's features use:
// cpu shares, reserved cores (cpuset), memory limits and stats, pids_limit.
var neededControllers = []string{"cpu", "cpuset", "memory", "pids"}

// checkCgroups reports the cgroup version and the needed controllers the
// node lacks. cgroup v2 lists its controllers in cgroup.controllers at the
// root; on v1 a controller is enabled in /proc/cgroups and mounted under
// the root.
func checkCgroups(h Host) Result {
	r := Result{Name: "cgroups"}
	var (
		version string
		have    []string
	)
	if b, err := os.ReadFile(filepath.Join(h.CgroupRoot, "cgroup.controllers")); err == nil {
		version, have = "v2", strings.Fields(string(b))
	} else {
		version = "v1"
		b, err := os.ReadFile(h.ProcCgroups)
		if err != nil {
			r.Status, r.Detail = Fail, fmt.Sprintf("neither %s nor %s is readable: %v", filepath.Join(h.CgroupRoot, "cgroup.controllers"), h.ProcCgroups, errText(err))
			r.Fix = "mount the cgroup filesystem at " + h.CgroupRoot
			return r
		}
		for _, c := range enabledV1(b) {
			if st, err := os.Stat(filepath.Join(h.CgroupRoot, c)); err == nil && st.IsDir() {
				have = append(have, c)
			}
		}
	}
	var missing []string
	for _, c := range neededControllers {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		r.Status = Fail
		r.Detail = fmt.Sprintf("cgroup %s lacks controllers %s (cpuset: reserved cores; pids: pids_limit; memory, cpu: limits and stats)", version, strings.Join(missing, ", "))
		if version == "v2" {
			r.Fix = "enable them in " + filepath.Join(h.CgroupRoot, "cgroup.subtree_control") + " (or boot with systemd's unified hierarchy, which enables them)"
		} else {
			r.Fix = "mount each missing controller under " + h.CgroupRoot + " (and remove cgroup_disable= from the kernel command line)"
		}
		return r
	}
	r.Status, r.Detail = Pass, fmt.Sprintf("cgroup %s with controllers %s", version, strings.Join(neededControllers, ", "))
	return r
}

// enabledV1 reads /proc/cgroups: "#subsys_name hierarchy num_cgroups
// enabled" lines.
func enabledV1(b []byte) []string {
	var out []string
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 4 && !strings.HasPrefix(f[0], "#") && f[3] == "1" {
			out = append(out, f[0])
		}
	}
	return out
}
