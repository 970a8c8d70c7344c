package driver

import (
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// pins holds open the host files and directories that a container's binds
// come from, from the moment the policy checks them until runc has mounted
// them, and then proves that what runc mounted is what was checked.
//
// Checking a path and handing the same path to runc leaves a window:
// between the check and the mount, anything that can write to a directory
// on the path (another task of the allocation, through the shared alloc
// dir) can swap a component for a symlink to a host path. So each source
// is opened once with O_PATH (the kernel follows every symlink, as the
// mount will), and the policy judges the path the kernel reports for that
// descriptor (/proc/self/fd/<n>), not the path as given. runc still mounts
// by path: binding the descriptor itself (/proc/<pid>/fd/<n>) is what one
// would like, but mount(2) refuses a source from another mount namespace,
// and runc mounts from the container's. So once runc has created the
// container, before its process runs, verify opens every bind's target
// inside the container's root and compares it (device and inode) with the
// descriptor that was checked; a mismatch means the path changed in
// between, and the container is removed before anything of the task runs.
// This is the re-check-after-resolving pattern of runc's own mount code.
//
// Nomad's own host volumes and CSI mounts (TaskConfig.Mounts) are not
// pinned here: Nomad applies its own rules to them.
type pins struct {
	files []*os.File
	binds []pinnedBind
}

// pinned is one open source and the path the kernel reached.
type pinned struct {
	real string
	file *os.File
}

// pinnedBind is a checked source and where it is mounted.
type pinnedBind struct {
	field  string // the option or task directory, for errors
	dest   string
	source pinned
	ro     bool // must be mounted read-only
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
	return pinned{real: real, file: f}, nil
}

// bind records that source is mounted at dest in the container, for verify.
func (p *pins) bind(field, dest string, source pinned) {
	p.binds = append(p.binds, pinnedBind{field: field, dest: path.Clean(dest), source: source})
}

// readOnly marks the last bind recorded at dest as one that must be
// mounted read-only: verify refuses the container when it is writable.
func (p *pins) readOnly(dest string) {
	dest = path.Clean(dest)
	for i := len(p.binds) - 1; i >= 0; i-- {
		if p.binds[i].dest == dest {
			p.binds[i].ro = true
			return
		}
	}
}

// verify checks, after runc created the container whose init process is
// pid (mounted, not yet running the task), that each bind target in the
// container is the file or directory that was checked. Of several binds
// at one destination the last is the one mounted.
func (p *pins) verify(pid uint32) error {
	root, err := os.OpenFile(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("failed to open the container's root to verify its binds: %w", err)
	}
	defer root.Close()
	done := map[string]bool{}
	for i := len(p.binds) - 1; i >= 0; i-- {
		b := p.binds[i]
		if done[b.dest] {
			continue
		}
		done[b.dest] = true
		if err := verifyBind(int(root.Fd()), b); err != nil {
			return err
		}
	}
	return nil
}

func verifyBind(root int, b pinnedBind) error {
	fd, err := unix.Openat2(root, b.dest, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("%s: failed to verify the bind at %s: %w", b.field, b.dest, err)
	}
	defer unix.Close(fd)
	var mounted, checked unix.Stat_t
	if err := unix.Fstat(fd, &mounted); err != nil {
		return fmt.Errorf("%s: failed to verify the bind at %s: %w", b.field, b.dest, err)
	}
	if err := unix.Fstat(int(b.source.file.Fd()), &checked); err != nil {
		return fmt.Errorf("%s: failed to verify the bind at %s: %w", b.field, b.dest, err)
	}
	if mounted.Dev != checked.Dev || mounted.Ino != checked.Ino {
		return fmt.Errorf("%s: what is mounted at %s is not the checked source %q (the host path changed while the container was created): refused", b.field, b.dest, b.source.real)
	}
	if b.ro {
		var fs unix.Statfs_t
		if err := unix.Fstatfs(fd, &fs); err != nil {
			return fmt.Errorf("%s: failed to verify the bind at %s: %w", b.field, b.dest, err)
		}
		if fs.Flags&unix.ST_RDONLY == 0 {
			return fmt.Errorf("%s: %s is writable in the container, where it must be read-only (another mount covers it): refused", b.field, b.dest)
		}
	}
	return nil
}

// close releases every descriptor; it is safe on a nil or closed set.
func (p *pins) close() {
	if p == nil {
		return
	}
	for _, f := range p.files {
		_ = f.Close()
	}
	p.files, p.binds = nil, nil
}
