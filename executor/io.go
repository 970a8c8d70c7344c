package executor

import (
	"fmt"
	"os"
	"path/filepath"

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
// driver) swaps the fifo for a symlink to a host file. So the driver opens
// each fifo itself with O_PATH|O_NOFOLLOW, checks on the open descriptor
// that it is a named pipe, and hands the shim /proc/<driver pid>/fd/<n>:
// that name can only reach the very fifo that was checked. The shim keeps
// its own descriptors once the task is created, so these are closed then.
// This needs containerd's shims in the driver's PID namespace, as on any
// Nomad client where containerd runs as a host service.
type logFifos struct {
	stdout, stderr string // what the shim is given
	files          []*os.File
}

// openLogFifos opens the stdout and stderr fifos ("" discards a stream;
// when only one is given the other goes to /dev/null).
func openLogFifos(stdout, stderr string) (*logFifos, error) {
	l := &logFifos{}
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
	f, err := openFifoNoFollow(path)
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

// openFifoNoFollow opens path with O_PATH|O_NOFOLLOW and makes sure that
// what it opened is a named pipe, not a symlink or any other file.
func openFifoNoFollow(path string) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("log fifo %q is not an absolute path", path)
	}
	f, err := os.OpenFile(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("failed to open log fifo: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
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
