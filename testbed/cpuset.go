package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// cpusetRoot is where the cgroup v1 cpuset hierarchy is mounted.
const cpusetRoot = "/sys/fs/cgroup/cpuset"

// Cpusets reproduces the cpuset cgroups a Nomad 1.6 client keeps on cgroup
// v1 (client/lib/cgutil/cpuset_manager_v1.go), under a cgroup parent of the
// test's own: <parent>/shared holds the parent's cores less every reserved
// one and is the cgroup of every task without reserved cores;
// <parent>/reserved/<alloc>-<task> holds a task's reserved cores. Add and
// Remove rewrite them as Nomad's reconcile does when an allocation comes
// and goes, and return what Nomad hands the driver as CpusetCgroupPath.
type Cpusets struct {
	Parent string // absolute path of the parent cgroup
	cores  []int  // the parent's cores

	mu       sync.Mutex
	reserved map[string][]int // "<alloc>-<task>" -> its cores
}

// NewCpusets makes a cgroup parent of the test's own under the v1 cpuset
// hierarchy, with the node's cores, and removes it when the test ends (after
// the cleanups the test registers later, such as its tasks' destroys).
func NewCpusets(t testing.TB) *Cpusets {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(cpusetRoot, &st); err != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
		t.Fatalf("testbed: no cgroup v1 cpuset hierarchy at %s (err %v): the Nomad client's cpusets are reproduced on cgroup v1 only", cpusetRoot, err)
	}
	var idb [3]byte
	_, _ = rand.Read(idb[:])
	c := &Cpusets{Parent: filepath.Join(cpusetRoot, "ndc-"+hex.EncodeToString(idb[:])), reserved: map[string][]int{}}
	t.Cleanup(func() {
		if err := removeCpusets(c.Parent); err != nil {
			t.Errorf("testbed: %v", err)
		}
	})
	cpus, err := os.ReadFile(filepath.Join(cpusetRoot, "cpuset.cpus"))
	if err == nil {
		c.cores, err = ParseCPUList(string(cpus))
	}
	// as Nomad: parent and shared copy the cores, reserved has none yet
	all := FormatCPUList(c.cores)
	for _, d := range [][2]string{{c.Parent, all}, {c.shared(), all}, {c.reservedDir(), ""}} {
		if err == nil {
			err = mkCpuset(d[0], d[1])
		}
	}
	if err != nil {
		t.Fatalf("testbed: cpuset cgroups: %v", err)
	}
	return c
}

// Cores are the node's cores, as the parent has them.
func (c *Cpusets) Cores() []int { return slices.Clone(c.cores) }

func (c *Cpusets) shared() string      { return filepath.Join(c.Parent, "shared") }
func (c *Cpusets) reservedDir() string { return filepath.Join(c.Parent, "reserved") }

// Add records a task of an allocation with its reserved cores (none: a
// task on the shared cores) and returns its CpusetCgroupPath.
func (c *Cpusets) Add(allocID, task string, cores ...int) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(cores) == 0 {
		return c.shared(), nil
	}
	dir := filepath.Join(c.reservedDir(), allocID+"-"+task)
	c.reserved[allocID+"-"+task] = cores
	if err := c.reconcile(); err != nil {
		return "", err
	}
	return dir, mkCpuset(dir, FormatCPUList(cores))
}

// Remove forgets a task's reservation (once its processes are gone) and
// gives its cores back to the shared cgroup.
func (c *Cpusets) Remove(allocID, task string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.reserved, allocID+"-"+task)
	if err := unix.Rmdir(filepath.Join(c.reservedDir(), allocID+"-"+task)); err != nil && err != unix.ENOENT {
		return fmt.Errorf("failed to remove reserved cpuset of %s-%s: %w", allocID, task, err)
	}
	return c.reconcile()
}

// reconcile writes shared and reserved as Nomad does: shared first (it
// only ever gives cores to reserved, which takes them next).
func (c *Cpusets) reconcile() error {
	var all []int
	for _, cores := range c.reserved {
		all = append(all, cores...)
	}
	var shared []int
	for _, core := range c.cores {
		if !slices.Contains(all, core) {
			shared = append(shared, core)
		}
	}
	if err := writeCgroup(c.shared(), "cpuset.cpus", FormatCPUList(shared)); err != nil {
		return err
	}
	return writeCgroup(c.reservedDir(), "cpuset.cpus", FormatCPUList(all))
}

// mkCpuset makes a cpuset cgroup with its parent's memory nodes and cpus.
func mkCpuset(dir, cpus string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	mems, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "cpuset.mems"))
	if err != nil {
		return err
	}
	if err := writeCgroup(dir, "cpuset.mems", strings.TrimSpace(string(mems))); err != nil {
		return err
	}
	if cpus == "" {
		return nil
	}
	return writeCgroup(dir, "cpuset.cpus", cpus)
}

func writeCgroup(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("failed to write %q to %s: %w", value, filepath.Join(dir, file), err)
	}
	return nil
}

// removeCgroupParent removes what a Nomad client made under its
// cgroup_parent: on cgroup v1 in the cpuset hierarchy, else on v2.
func removeCgroupParent(parent string) error {
	if parent == "" {
		return nil
	}
	if err := checkCgroupParent(parent); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(cpusetRoot, &st); err == nil && st.Type == unix.CGROUP_SUPER_MAGIC {
		return removeCpusets(filepath.Join(cpusetRoot, parent))
	}
	return removeCpusets(filepath.Join(filepath.Dir(cpusetRoot), parent))
}

// checkCgroupParent refuses a cgroup parent that is not a clean absolute
// path below the root: removing it would remove other cgroups.
func checkCgroupParent(parent string) error {
	if !filepath.IsAbs(parent) || filepath.Clean(parent) != parent || parent == "/" {
		return fmt.Errorf("cgroup parent %q: want a clean absolute path below the root", parent)
	}
	return nil
}

// removeCpusets removes a cgroup parent and every cgroup below it, deepest
// first; a cgroup that still holds a process is an error.
func removeCpusets(parent string) error {
	var dirs []string
	_ = filepath.WalkDir(parent, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := unix.Rmdir(dirs[i]); err != nil && err != unix.ENOENT {
			procs, _ := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs"))
			return fmt.Errorf("failed to remove cpuset cgroup %s (processes %q): %w", dirs[i], strings.Fields(string(procs)), err)
		}
	}
	return nil
}

// ParseCPUList reads a kernel cpu list such as "0-2,5".
func ParseCPUList(s string) ([]int, error) {
	var cores []int
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || b < a {
			return nil, fmt.Errorf("bad cpu list %q", s)
		}
		for i := a; i <= b; i++ {
			cores = append(cores, i)
		}
	}
	return cores, nil
}

// FormatCPUList writes cores as a kernel cpu list, "0,1,3".
func FormatCPUList(cores []int) string {
	s := make([]string, len(cores))
	for i, c := range cores {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// AllowedCPUsScript, run by sh inside a container, prints the
// Cpus_allowed_list of every process there, its own included.
const AllowedCPUsScript = "grep -H Cpus_allowed_list /proc/[0-9]*/status 2>/dev/null; true"

// AllowedCPUs reads AllowedCPUsScript's output: the cores all the
// container's processes may run on. It is an error when they differ, when
// the init (PID 1) is missing or when fewer than min processes are seen.
func AllowedCPUs(out string, min int) ([]int, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < min || !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "/proc/1/") }) {
		return nil, fmt.Errorf("want the init and %d processes in all: %q", min, lines)
	}
	var cpus []int
	for i, l := range lines {
		_, list, _ := strings.Cut(l, "Cpus_allowed_list:")
		got, err := ParseCPUList(list)
		if err != nil {
			return nil, err
		}
		if i > 0 && !slices.Equal(cpus, got) {
			return nil, fmt.Errorf("processes on different cores: %q", lines)
		}
		cpus = got
	}
	return cpus, nil
}
