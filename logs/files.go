package logs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// openDirBeneath opens dir, which must lie beneath root, as an O_PATH
// directory with no symlink followed below root.
func openDirBeneath(root, dir string) (*os.File, error) {
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return nil, fmt.Errorf("log directory %q is refused: it is not beneath the allocation directory %q", dir, root)
	}
	r, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("failed to open the allocation directory: %w", err)
	}
	defer r.Close()
	fd, err := unix.Openat2(int(r.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTDIR) {
		return nil, fmt.Errorf("log directory %q is refused: a directory on its path beneath %q is a symlink, and task output never follows one", dir, root)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open log directory: %w", &os.PathError{Op: "openat2", Path: dir, Err: err})
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// openAt opens name in dir with flags, never following a symlink.
func openAt(dir *os.File, name string, flags int) (*os.File, error) {
	how := &unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	if flags&unix.O_CREAT != 0 {
		how.Mode = 0o644
	}
	fd, err := unix.Openat2(int(dir.Fd()), name, how)
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: filepath.Join(dir.Name(), name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name)), nil
}

// plainFile tells whether f is a regular file with a single link.
func plainFile(f *os.File) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false, fmt.Errorf("failed to stat %s: %w", f.Name(), err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1, nil
}

// openPlain opens (creating it if needed) the regular file name in dir
// with flags. Whatever else holds the name (a symlink, a fifo, a hard link
// to another file) is removed first, so output never reaches another file.
func openPlain(dir *os.File, name string, flags int) (*os.File, error) {
	for attempt := 0; attempt < 3; attempt++ {
		f, err := openAt(dir, name, flags|unix.O_CREAT|unix.O_NONBLOCK)
		if err == nil {
			ok, serr := plainFile(f)
			if serr != nil {
				f.Close()
				return nil, serr
			}
			if ok {
				return f, nil
			}
			f.Close()
		} else if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENXIO) && !errors.Is(err, unix.EISDIR) {
			return nil, fmt.Errorf("failed to open log file: %w", err)
		}
		if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("failed to remove %q, which is not a plain log file: %w", filepath.Join(dir.Name(), name), err)
		}
	}
	return nil, fmt.Errorf("failed to open log file %q: something keeps replacing it with what is not a plain file", filepath.Join(dir.Name(), name))
}

// procPath is the name through which another process on the host opens the
// very file f holds.
func procPath(f *os.File) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
}
