package testbed

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"golang.org/x/sys/unix"
)

// StartContainerdOnLoopFS starts a hermetic containerd whose root is an
// ext4 filesystem of sizeMiB of its own (LoopFS), so that what fills it is
// containerd's content and snapshots alone. It returns containerd and its
// root; containerd stops, and the filesystem goes, when the test ends.
func StartContainerdOnLoopFS(t testing.TB, sizeMiB int) (*Containerd, string) {
	t.Helper()
	Require(t, true, "containerd", "containerd-shim-runc-v2", "runc")
	dir := t.TempDir()
	root := filepath.Join(dir, "root") // containerd's root, on a filesystem of its own
	LoopFS(t, root, sizeMiB)
	cd, err := LaunchContainerd(LaunchOptions{Dir: dir})
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	stopAtCleanup(t, "containerd", cd) // before the filesystem is unmounted
	return cd, root
}

// UsedPercent is df's use% of the filesystem holding path: blocks reserved
// for root count as neither used nor free.
func UsedPercent(path string) (float64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("failed to measure the filesystem of %s: %w", path, err)
	}
	used := fs.Blocks - fs.Bfree
	return float64(used) * 100 / float64(used+fs.Bavail), nil
}

// PushFillers pushes, for each name, busybox with a layer of size
// incompressible bytes (a blob and, unpacked, a snapshot of that size) as
// repo/<name>:1, and returns the references by name. seed makes the images
// differ from those of another call.
func PushFillers(ctx context.Context, reg *Registry, repo string, names []string, size int, seed int64) (map[string]string, error) {
	refs := make(map[string]string, len(names))
	for i, n := range names {
		layer, err := FillerLayer(n, size, seed+int64(i))
		if err != nil {
			return nil, err
		}
		img, err := BusyboxWith(&layer)
		if err != nil {
			return nil, err
		}
		if _, err := reg.Push(ctx, img, repo+"/"+n+":1"); err != nil {
			return nil, fmt.Errorf("failed to push %s/%s:1: %w", repo, n, err)
		}
		refs[n] = reg.Host + "/" + repo + "/" + n + ":1"
	}
	return refs, nil
}

// PullUnpacked pulls ref from a loopback registry (plain HTTP) into cd's
// namespace and unpacks it into the default snapshotter, as a client of
// containerd other than the driver would.
func PullUnpacked(ctx context.Context, cd *Containerd, ref string) error {
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost))})
	if _, err := cd.Client.Pull(withNS(ctx, cd.Namespace), ref, client.WithResolver(resolver), client.WithPullUnpack); err != nil {
		return fmt.Errorf("failed to pull %s: %w", ref, err)
	}
	return nil
}
