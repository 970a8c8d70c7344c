package executor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"
)

// Cpuset is the cpuset cgroup the Nomad client keeps for a task (the task
// config's CpusetCgroupPath). Nomad writes its cpuset.cpus whenever a task
// with reserved cores starts or stops, so a process placed in it follows the
// node's shared cores with nothing for the driver to watch: the kernel moves
// it when Nomad writes.
//
// On cgroup v1 it is Nomad's <parent>/shared cgroup for a task without
// reserved cores, or <parent>/reserved/<alloc>-<task> for one with them.
// The cpuset hierarchy is separate from the others, so the container's
// processes join Nomad's cgroup in that hierarchy only; memory, CPU and pids
// limits stay on the container's own cgroups. The init process joins between
// create and start, before it runs the task's program, so all it forks is
// in the cgroup too. An exec'd process starts in the container's own
// cgroups (runc puts it there), so the container's own cpuset gets a copy
// of Nomad's cores first, and the process joins Nomad's right after it
// starts.
//
// On cgroup v2 it is the task's scope, <parent>/<alloc>.<task>.scope. A
// process is in one cgroup only, so the container's cgroup is made a child
// of the scope: its effective cpus are bounded by the scope's, and the
// kernel narrows and widens them as Nomad rewrites the scope.
type Cpuset struct {
	dir     string
	unified bool
}

// Filesystem magics of cgroup v1 and v2 (statfs f_type).
const (
	cgroupV1Magic = unix.CGROUP_SUPER_MAGIC
	cgroupV2Magic = unix.CGROUP2_SUPER_MAGIC
)

// OpenCpuset checks that dir is a cpuset cgroup under /sys/fs/cgroup and
// tells v1 from v2. An empty dir is no cpuset (nil, nil): the Nomad client
// manages none (no cpuset controller, or a client that runs without one).
func OpenCpuset(dir string) (*Cpuset, error) {
	if dir == "" {
		return nil, nil
	}
	if err := checkCpusetDir(dir); err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("failed to stat cpuset cgroup %q: %w", dir, err)
	}
	unified, err := cgroupKind(dir, int64(st.Type))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "cpuset.cpus")); err != nil {
		return nil, fmt.Errorf("cpuset cgroup %q has no cpuset controller: %w", dir, err)
	}
	return &Cpuset{dir: dir, unified: unified}, nil
}

// checkCpusetDir accepts a clean absolute path strictly under /sys/fs/cgroup.
func checkCpusetDir(dir string) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || !strings.HasPrefix(dir, cgroupRoot+"/") {
		return fmt.Errorf("cpuset cgroup %q: want a clean absolute path under %s", dir, cgroupRoot)
	}
	return nil
}

// cgroupKind tells from a filesystem type whether dir is on cgroup v2.
func cgroupKind(dir string, fsType int64) (unified bool, err error) {
	switch fsType {
	case cgroupV1Magic:
		return false, nil
	case cgroupV2Magic:
		return true, nil
	}
	return false, fmt.Errorf("cpuset cgroup %q: not on a cgroup filesystem (type %#x)", dir, fsType)
}

// cgroupsPath is the OCI cgroupsPath of container id on v2: a child of the
// task's scope, relative to the cgroup root.
func (c *Cpuset) cgroupsPath(id string) string {
	return strings.TrimPrefix(c.dir, cgroupRoot) + "/" + id
}

// specOpts make the cgroup of container id a child of the task's scope on
// v2; on v1 the container keeps containerd's cgroups.
func (c *Cpuset) specOpts(id string) []oci.SpecOpts {
	if c == nil || !c.unified {
		return nil
	}
	return []oci.SpecOpts{oci.WithCgroup(c.cgroupsPath(id))}
}

// join moves process pid (and on v1 only in the cpuset hierarchy) into
// the cgroup. It does nothing on v2, where the container's cgroup is
// already below it.
func (c *Cpuset) join(pid uint32) error {
	if c == nil || c.unified {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(c.dir, "cgroup.procs"), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("failed to open cpuset cgroup %q: %w", c.dir, err)
	}
	_, err = f.WriteString(strconv.FormatUint(uint64(pid), 10))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("failed to move process %d into cpuset cgroup %q: %w", pid, c.dir, err)
	}
	return nil
}

// copyTo copies the cgroup's cores to the container's own v1 cpuset cgroup
// (cgroupsPath from its spec), where an exec'd process starts. It does
// nothing on v2, or for a cgroupsPath that is not a cgroupfs path.
func (c *Cpuset) copyTo(cgroupsPath string) error {
	if c == nil || c.unified || !strings.HasPrefix(cgroupsPath, "/") || strings.Contains(cgroupsPath, ":") {
		return nil
	}
	hierarchy, _, _ := strings.Cut(strings.TrimPrefix(c.dir, cgroupRoot+"/"), "/")
	cpus, err := os.ReadFile(filepath.Join(c.dir, "cpuset.cpus"))
	if err != nil {
		return fmt.Errorf("failed to read cpuset cgroup %q: %w", c.dir, err)
	}
	own := filepath.Join(cgroupRoot, hierarchy, filepath.Clean(cgroupsPath), "cpuset.cpus")
	if err := os.WriteFile(own, bytes.TrimSpace(cpus), 0); err != nil {
		return fmt.Errorf("failed to copy cpuset cgroup %q to %s: %w", c.dir, own, err)
	}
	return nil
}

// processGone reports whether a join failed because the process exited.
func processGone(err error) bool { return errors.Is(err, syscall.ESRCH) }
