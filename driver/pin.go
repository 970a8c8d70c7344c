package driver

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// pins holds open the host files and directories that a container's binds
// come from, from the moment the policy checks them until runc has mounted
// them.
//
// Checking a path and then handing the same path to runc leaves a window:
// between the check and the mount, anything that can write to a directory
// on the path (another task of the allocation, through the shared alloc
// dir) can swap a component for a symlink to a host path. So each source
// is opened once with O_PATH (the kernel follows every symlink, as the
// mount would), the policy is applied to the path the kernel reports for
// the open descriptor (/proc/self/fd/<n>), and runc binds
// /proc/<driver pid>/fd/<n>: that name reaches the checked file or
// directory and nothing else, whatever happens to the path meanwhile. This
// is the open-then-check-the-descriptor pattern runc uses for its own
// mounts; re-resolving the path after the check would only narrow the
// window. It needs runc in the driver's PID namespace, as on any Nomad
// client where containerd runs as a host service. The descriptors are
// closed once the container's task exists (runc has mounted by then).
//
// Nomad's own host volumes and CSI mounts (TaskConfig.Mounts) are not
// pinned here: Nomad applies its own rules to them.
type pins struct {
	files []*os.File
}

// pinned is one open source: its real path and the name a bind mount of
// it uses.
type pinned struct {
	real, source string
	file         *os.File
}

// open opens path, following symlinks, and keeps it open until close.
func (p *pins) open(path string) (pinned, error) {
	f, err := os.OpenFile(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return pinned{}, err
	}
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		f.Close()
		return pinned{}, fmt.Errorf("failed to read the path of %q: %w", path, err)
	}
	// a removed file or directory has no path the policy can judge
	if !strings.HasPrefix(real, "/") || strings.HasSuffix(real, " (deleted)") {
		f.Close()
		return pinned{}, fmt.Errorf("%q resolves to %q, which is not a reachable path", path, real)
	}
	p.files = append(p.files, f)
	return pinned{real: real, source: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()), file: f}, nil
}

// close releases every descriptor; it is safe on a nil or closed set.
func (p *pins) close() {
	if p == nil {
		return
	}
	for _, f := range p.files {
		_ = f.Close()
	}
	p.files = nil
}
