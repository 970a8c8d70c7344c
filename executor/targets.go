package executor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/oci"
	securejoin "github.com/cyphar/filepath-securejoin"
)

// checkResolvedTargets resolves every mount destination of the spec inside
// the container's root filesystem (a read-only view of its new snapshot),
// following the image's symlinks the way runc does when it mounts, and
// hands each one to check. An image whose /data is a symlink to /alloc
// thus cannot make a bind at /data land on /alloc unseen. The view is
// mounted without the snapshot's ID mapping (resolving names needs no
// ownership), which spares a user namespace and an idmapped mount of the
// layers per start.
func checkResolvedTargets(check func(target, resolved string) error) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if c.Snapshotter == "" || c.SnapshotKey == "" {
			return errors.New("failed to check mount targets: the container has no snapshot")
		}
		mounts, err := client.SnapshotService(c.Snapshotter).Mounts(ctx, c.SnapshotKey)
		if err != nil {
			return fmt.Errorf("failed to check mount targets: %w", err)
		}
		return mount.WithReadonlyTempMount(ctx, withoutIDMap(mounts), func(root string) error {
			for _, m := range s.Mounts {
				resolved, err := resolveInRoot(root, m.Destination)
				if err != nil {
					return err
				}
				if err := check(m.Destination, resolved); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// resolveInRoot returns where path lands inside root, as an absolute path of
// the container, following symlinks scoped to root; missing components
// are kept as they are (runc creates them).
func resolveInRoot(root, path string) (string, error) {
	full, err := securejoin.SecureJoin(root, path)
	if err != nil {
		return "", fmt.Errorf("failed to resolve mount target %q in the root filesystem: %w", path, err)
	}
	rel, err := filepath.Rel(root, full)
	if err != nil {
		return "", fmt.Errorf("failed to resolve mount target %q in the root filesystem: %w", path, err)
	}
	return filepath.Join("/", rel), nil
}

// withoutIDMap is mounts without the overlay options that map IDs.
func withoutIDMap(mounts []mount.Mount) []mount.Mount {
	out := make([]mount.Mount, len(mounts))
	for i, m := range mounts {
		m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool {
			return strings.HasPrefix(o, "uidmap=") || strings.HasPrefix(o, "gidmap=")
		})
		out[i] = m
	}
	return out
}
