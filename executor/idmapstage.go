package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Staged idmapped binds: instead of handing runc binds with uidMappings
// (for which runc 1.2 and later spawns a process holding a user namespace
// of the mapping and clones each source with open_tree in every start), the
// driver makes each bind marked IDMapOption itself, as a detached idmapped
// clone of its source attached at a path in the container's own staging
// directory, and hands runc a plain bind of that path: a bind of an
// idmapped mount keeps its idmapping. The staging directory is a private
// mount of itself while it holds them, so nothing made there propagates. The staged mounts are needed
// only while the container is created (runc's binds are copies in the
// container's mount namespace): ReleaseStaged removes them then.

// StageIDMapped makes the mounts marked IDMapOption idmapped with mapping
// m under dir (the container's staging directory, made with its parents,
// 0711 so that the container's root, an unprivileged host ID, reaches what
// is staged there) and points them there, without the mark and the
// mapping: runc binds them as they are. Read-only mounts are read-only in
// the staging directory too. On error nothing is left staged.
func StageIDMapped(dir string, mounts []specs.Mount, m []specs.LinuxIDMapping) error {
	s := PlanIDMapped(dir, mounts, m)
	defer s.Close()
	return s.Stage()
}

// Staging is the idmapped binds of one container to be staged in its
// staging directory.
type Staging struct {
	dir   string
	idmap string
	binds []stagedBind
	ns    *os.File // the mapping's user namespace, once open
}

// stagedBind is a marked mount as the task asked for it and the path in
// the staging directory its clone goes to.
type stagedBind struct {
	mnt    specs.Mount
	target string
}

// PlanIDMapped points the mounts marked IDMapOption at their paths under
// dir, without the mark, and returns what Stage must attach there; it
// makes no mount itself, so the spec can be used while Stage runs. With
// no mapping or no marked mount there is nothing to stage.
func PlanIDMapped(dir string, mounts []specs.Mount, m []specs.LinuxIDMapping) *Staging {
	s := &Staging{dir: dir, idmap: idMapString(m)}
	if len(m) == 0 {
		return s
	}
	for i, mnt := range mounts {
		if !marked(mnt) {
			continue
		}
		target := filepath.Join(dir, strconv.Itoa(i))
		s.binds = append(s.binds, stagedBind{mnt: mnt, target: target})
		mounts[i].Source = target
		mounts[i].Options = slices.DeleteFunc(slices.Clone(mnt.Options), func(o string) bool { return o == IDMapOption })
	}
	return s
}

// Stage attaches the planned idmapped clones in the staging directory, a
// private mount of itself while it holds them. On error nothing is left
// staged.
func (s *Staging) Stage() (retErr error) {
	if len(s.binds) == 0 {
		return nil
	}
	if err := s.open(); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			_ = ReleaseStaged(s.dir)
		}
	}()
	for _, b := range s.binds {
		if err := stageOne(int(s.ns.Fd()), b.mnt, b.target); err != nil {
			return fmt.Errorf("failed to stage the idmapped bind of %s at %s: %w", b.mnt.Source, b.mnt.Destination, err)
		}
	}
	return nil
}

// open makes the staging directory a private mount of itself and gets
// the user namespace of the mapping, once.
func (s *Staging) open() (retErr error) {
	if s.ns != nil {
		return nil
	}
	dir := s.dir
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("failed to make the idmap staging directory %s: %w", dir, err)
	}
	defer func() {
		if retErr != nil {
			_ = ReleaseStaged(dir)
		}
	}()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("failed to bind the idmap staging directory %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("failed to make the idmap staging directory %s private: %w", dir, err)
	}
	ns, err := usernsFD(s.idmap)
	if err != nil {
		return fmt.Errorf("failed to make a user namespace for idmapped mounts: %w", err)
	}
	s.ns = ns
	return nil
}

// Close lets go of the user namespace the staging used; what is staged
// stays until ReleaseStaged.
func (s *Staging) Close() {
	if s.ns != nil {
		s.ns.Close()
		s.ns = nil
	}
}

func marked(mnt specs.Mount) bool { return slices.Contains(mnt.Options, IDMapOption) }

// stageOne clones the source (with the mounts below it for an rbind, as
// runc does; the mapping covers the top mount) with the user namespace's
// mapping and attaches the clone at target, a new file or directory.
func stageOne(nsFD int, mnt specs.Mount, target string) error {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if slices.Contains(mnt.Options, "rbind") {
		flags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, mnt.Source, flags)
	if err != nil {
		return fmt.Errorf("failed to clone the source: %w", err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(nsFD)}
	if slices.Contains(mnt.Options, "ro") {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("failed to idmap the clone: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return fmt.Errorf("failed to stat the clone: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.Mkdir(target, 0o711)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("failed to make the staging path: %w", err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("failed to attach the clone: %w", err)
	}
	return nil
}

// ReleaseStaged unmounts what is staged in dir and dir's own mount, and
// removes dir; a dir that does not exist is released already.
func ReleaseStaged(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read the idmap staging directory %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.Name() == rootFSDir {
			errs = append(errs, unmountRemove(filepath.Join(p, layersDir)))
		}
		errs = append(errs, unmountRemove(p))
	}
	errs = append(errs, unmountRemove(dir))
	return errors.Join(errs...)
}

// unmountRemove unmounts what is mounted at p, if anything, and removes
// p, if it is there.
func unmountRemove(p string) error {
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("failed to unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("failed to remove %s: %w", p, err)
	}
	return nil
}

// idMapString is m in core/mount's "container:host:size[,...]" form.
func idMapString(m []specs.LinuxIDMapping) string {
	parts := make([]string, len(m))
	for i, e := range m {
		parts[i] = fmt.Sprintf("%d:%d:%d", e.ContainerID, e.HostID, e.Size)
	}
	return strings.Join(parts, ",")
}
