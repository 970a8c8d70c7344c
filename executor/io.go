package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/pkg/cio"
	"golang.org/x/sys/unix"
)

// staticIO hands the shim fixed paths to open itself. The plugin holds no end
// of the pipes, so output keeps flowing to Nomad's log fifos while the plugin
// restarts, and closing it never removes Nomad's files.
type staticIO struct {
	config cio.Config
}

func (s *staticIO) Config() cio.Config { return s.config }
func (s *staticIO) Cancel()            {}
func (s *staticIO) Wait()              {}
func (s *staticIO) Close() error       { return nil }

// logCreator returns a cio.Creator whose IO points the shim at the given
// stdout and stderr paths ("" discards that stream).
func logCreator(stdout, stderr string) cio.Creator {
	return func(string) (cio.IO, error) {
		return &staticIO{config: cio.Config{Stdout: stdout, Stderr: stderr}}, nil
	}
}

// logFifos holds Nomad's log fifos open while the shim opens them.
//
// The shim opens a stdout path by name, follows symlinks, and writes to
// whatever it finds: a regular file is appended to. A check of the path
// followed by the shim's open would leave a window in which something that
// can write to alloc/logs (another task of the allocation, under another
// driver) swaps the fifo, or a directory above it, for a symlink to a host
// file. So the driver opens each fifo itself beneath the allocation
// directory with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so that no
// symlink anywhere on the path is followed, checks on the open descriptor
// that it is a named pipe, and hands the shim /proc/<driver pid>/fd/<n>:
// that name can only reach the very fifo that was checked. The shim keeps
// its own descriptors once the task is created, so these are closed then.
// This needs containerd's shims in the driver's PID namespace, as on any
// Nomad client where containerd runs as a host service.
type logFifos struct {
	stdout, stderr string // what the shim is given
	root           string // the fifos must be beneath it
	files          []*os.File
}

// openLogFifos opens the stdout and stderr fifos beneath root ("" is /)
// ("" discards a stream; when only one is given the other goes to
// /dev/null).
func openLogFifos(root, stdout, stderr string) (*logFifos, error) {
	l := &logFifos{root: root}
	var err error
	if l.stdout, err = l.open(stdout); err != nil {
		l.Close()
		return nil, fmt.Errorf("invalid stdout: %w", err)
	}
	if l.stderr, err = l.open(stderr); err != nil {
		l.Close()
		return nil, fmt.Errorf("invalid stderr: %w", err)
	}
	if l.stdout == "" && l.stderr != "" {
		l.stdout = os.DevNull
	}
	if l.stderr == "" && l.stdout != "" {
		l.stderr = os.DevNull
	}
	return l, nil
}

func (l *logFifos) open(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	f, err := openFifoBeneath(l.root, path)
	if err != nil {
		return "", err
	}
	l.files = append(l.files, f)
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()), nil
}

// Close releases the driver's descriptors; the shim holds its own.
func (l *logFifos) Close() {
	for _, f := range l.files {
		_ = f.Close()
	}
	l.files = nil
}

// openFifoBeneath opens path, which must lie beneath root, with O_PATH and
// no symlink followed on any component below root (root itself is the
// allocation directory Nomad gave, opened as it is), and makes sure that
// what it opened is a named pipe, not a symlink or any other file.
func openFifoBeneath(root, path string) (*os.File, error) {
	if root == "" {
		root = "/"
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("log fifo %q is not an absolute path", path)
	}
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("log fifo %q is refused: it is not beneath the allocation directory %q", path, root)
	}
	dir, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("failed to open the allocation directory: %w", err)
	}
	defer dir.Close()
	fd, err := unix.Openat2(int(dir.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		if st, lerr := os.Lstat(path); lerr == nil && st.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("log fifo %q is not a named pipe (a symlink): refused, so that task output never reaches another file", path)
		}
		return nil, fmt.Errorf("log fifo %q is refused: a directory on its path beneath %q is a symlink, and task output never follows one", path, root)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open log fifo: %w", &os.PathError{Op: "openat2", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to stat log fifo %q: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		f.Close()
		return nil, fmt.Errorf("log fifo %q is not a named pipe (%s): refused, so that task output never reaches another file", path, fileKind(st.Mode))
	}
	return f, nil
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	case unix.S_IFSOCK:
		return "a socket"
	}
	return "mode " + fmt.Sprintf("%o", mode)
}
