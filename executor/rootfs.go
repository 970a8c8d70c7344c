package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// The root filesystem of a task in its own user namespace, mounted by the
// driver's staging: the overlayfs snapshotter gives such a snapshot as an
// overlay mount with uidmap and gidmap options, for which the shim would
// make a user namespace of the mapping (a process of its own) to idmap the
// layers at every task create. The driver has the mapping's namespace
// already (Staging): it idmaps the layers' common directory in the
// container's staging directory and hands the task a plain overlay on it
// (client.WithRootFS). containerd's task create adds the mounts of the
// container's snapshot key to those, so such a container is recorded
// without one: its snapshot is held by the container's snapshot reference
// label, and removed with the container (withOwnSnapshotCleanup).

// rootFSDir, in a container's staging directory, is where the layers'
// idmapped clone is attached, at layersDir in it.
const rootFSDir, layersDir = "rootfs", "layers"

// labelSnapshotRef, followed by the snapshotter's name, is containerd's
// garbage collection reference from the container to its snapshot.
const labelSnapshotRef = "containerd.io/gc.ref.snapshot."

// rootFS is what a create learns of the container's snapshot: its mounts
// and whether the driver mounts them (the task gets WithRootFS).
type rootFS struct {
	mounts []mount.Mount
	own    bool
}

// withMappedSnapshot prepares the container's snapshot of img with the
// mapping's labels, as client.WithNewSnapshot does for a snapshotter with
// idmap support, and keeps its mounts in fs. While the spec is built the
// container has the snapshot key (named users and mount targets resolve
// in it); withSnapshotRef drops it after.
func withMappedSnapshot(id string, img client.Image, m []specs.LinuxIDMapping, fs *rootFS) client.NewContainerOpts {
	return func(ctx context.Context, c *client.Client, ctr *containers.Container) error {
		diffIDs, err := img.RootFS(ctx)
		if err != nil {
			return fmt.Errorf("failed to read the layers of image %s: %w", img.Name(), err)
		}
		ms, err := c.SnapshotService(ctr.Snapshotter).Prepare(ctx, id, identity.ChainID(diffIDs).String(), client.WithUserNSRemapperLabels(m, m))
		if err != nil {
			return fmt.Errorf("failed to prepare snapshot %s: %w", id, err)
		}
		fs.mounts, fs.own = ms, mappedOverlay(ms)
		ctr.SnapshotKey = id
		return nil
	}
}

// withSnapshotRef records the container without its snapshot key, the
// snapshot held by the reference label instead, when the driver mounts
// the root filesystem.
func withSnapshotRef(fs *rootFS) client.NewContainerOpts {
	return func(_ context.Context, _ *client.Client, ctr *containers.Container) error {
		if !fs.own {
			return nil
		}
		if ctr.Labels == nil {
			ctr.Labels = map[string]string{}
		}
		ctr.Labels[labelSnapshotRef+ctr.Snapshotter] = ctr.SnapshotKey
		ctr.SnapshotKey = ""
		return nil
	}
}

// withOwnSnapshotCleanup removes the snapshot of a container recorded
// without its key (withSnapshotRef); client.WithSnapshotCleanup removes
// the others'.
func withOwnSnapshotCleanup(ctx context.Context, c *client.Client, ctr containers.Container) error {
	key := ctr.Labels[labelSnapshotRef+ctr.Snapshotter]
	if ctr.SnapshotKey != "" || key == "" {
		return nil
	}
	if err := c.SnapshotService(ctr.Snapshotter).Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("failed to remove snapshot %s: %w", key, err)
	}
	return nil
}

// mappedOverlay says whether ms is one overlay mount whose layers the
// snapshotter asks to be idmapped.
func mappedOverlay(ms []mount.Mount) bool {
	if len(ms) != 1 || ms[0].Type != "overlay" || lowerDirs(ms[0].Options) == nil {
		return false
	}
	return slices.ContainsFunc(ms[0].Options, func(o string) bool { return strings.HasPrefix(o, "uidmap=") })
}

// lowerDirs are the paths of an overlay's lowerdir option.
func lowerDirs(opts []string) []string {
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
			return strings.Split(v, ":")
		}
	}
	return nil
}

// StageRootFS idmaps the layers of ms, a snapshot's overlay with uidmap and
// gidmap options, in the staging directory (one read-only idmapped clone
// of their common directory) and returns the overlay on them, without the
// mapping options: the task's root filesystem.
func (s *Staging) StageRootFS(ms []mount.Mount) ([]mount.Mount, error) {
	if !mappedOverlay(ms) {
		return nil, fmt.Errorf("failed to stage the root filesystem: %v is not one overlay with idmapped layers", ms)
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	lowers := lowerDirs(ms[0].Options)
	common := commonDir(lowers)
	// the clone shows every snapshot below common owned by the range's
	// IDs: only root (the shim) may reach it, unlike the binds, which
	// the task's root reaches
	private := filepath.Join(s.dir, rootFSDir)
	if err := os.Mkdir(private, 0o700); err != nil {
		return nil, fmt.Errorf("failed to make the root filesystem's staging directory: %w", err)
	}
	target := filepath.Join(private, layersDir)
	src := specs.Mount{Source: common, Options: []string{"ro"}}
	if err := stageOne(int(s.ns.Fd()), src, target); err != nil {
		return nil, fmt.Errorf("failed to stage the layers of the root filesystem from %s: %w", common, err)
	}
	staged := make([]string, len(lowers))
	for i, l := range lowers {
		rel, err := filepath.Rel(common, l)
		if err != nil {
			return nil, fmt.Errorf("failed to stage layer %s: %w", l, err)
		}
		staged[i] = filepath.Join(target, rel)
	}
	m := ms[0]
	m.Options = nil
	for _, o := range withoutIDMap(ms)[0].Options {
		if strings.HasPrefix(o, "lowerdir=") {
			o = "lowerdir=" + strings.Join(staged, ":")
		}
		m.Options = append(m.Options, o)
	}
	return []mount.Mount{m}, nil
}

// commonDir is the deepest directory that holds every path of dirs.
func commonDir(dirs []string) string {
	common := filepath.Dir(filepath.Clean(dirs[0]))
	for _, d := range dirs[1:] {
		for !isUnderDir(filepath.Clean(d), common) {
			common = filepath.Dir(common)
		}
	}
	return common
}

func isUnderDir(path, dir string) bool {
	return dir == "/" || strings.HasPrefix(path, dir+"/")
}

// remapCaps caches, per snapshotter, whether it mounts layers idmapped
// itself (containerd's "remap-ids" capability).
type remapCaps struct {
	mu   sync.Mutex
	caps map[string]bool
}

func (r *remapCaps) remapsIDs(ctx context.Context, c *client.Client, snapshotter string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.caps[snapshotter]; ok {
		return v, nil
	}
	caps, err := c.GetSnapshotterCapabilities(ctx, snapshotter)
	if err != nil {
		return false, fmt.Errorf("failed to read the capabilities of snapshotter %s: %w", snapshotter, err)
	}
	if r.caps == nil {
		r.caps = map[string]bool{}
	}
	r.caps[snapshotter] = slices.Contains(caps, "remap-ids")
	return r.caps[snapshotter], nil
}
