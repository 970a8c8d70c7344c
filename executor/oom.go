package executor

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupRoot is where the cgroup file systems are mounted, as containerd's
// cgroups library assumes too.
const cgroupRoot = "/sys/fs/cgroup"

// oomCounterFile is the file with the oom_kill counter of the memory cgroup
// of process pid, found from /proc/<pid>/cgroup; "" when there is none.
// Read while the process is known to be the container's (right after it is
// created), it still names the container's cgroup after the exit, until the
// task is deleted.
func oomCounterFile(pid uint32) string {
	if pid == 0 {
		return ""
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	return oomCounterPath(data)
}

// oomCounterPath picks the counter file from the content of /proc/<pid>/cgroup:
// memory.oom_control of the v1 memory hierarchy, else memory.events of the
// v2 (unified) one.
func oomCounterPath(procCgroup []byte) string {
	unified := ""
	for _, line := range strings.Split(string(procCgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				return filepath.Join(cgroupRoot, "memory", parts[2], "memory.oom_control")
			}
		}
	}
	if unified == "" {
		return ""
	}
	return filepath.Join(cgroupRoot, unified, "memory.events")
}

// readOOMKills reads the oom_kill counter of a memory.oom_control or
// memory.events file.
func readOOMKills(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "oom_kill "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no oom_kill counter in %s", path)
}
