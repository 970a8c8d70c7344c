package image

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins"
	"golang.org/x/sys/unix"
)

// rootExport is the key under which containerd's content and snapshotter
// plugins export the directory they keep their data in.
const rootExport = plugins.SnapshotterRootDir

func (s containerdGCStore) roots(ctx context.Context) ([]string, error) {
	if s.c == nil {
		return nil, nil
	}
	filters := []string{"type==" + plugins.ContentPlugin.String()}
	if s.snapshotter != "" {
		filters = append(filters, fmt.Sprintf("type==%s,id==%s", plugins.SnapshotPlugin, s.snapshotter))
	}
	resp, err := s.c.IntrospectionService().Plugins(ctx, filters...)
	if err != nil {
		return nil, err
	}
	var roots []string
	for _, p := range resp.Plugins {
		if r := p.Exports[rootExport]; r != "" && p.InitErr == nil {
			roots = append(roots, r)
		}
	}
	return roots, nil
}

func (s containerdGCStore) inventory(ctx context.Context) ([]imageUse, error) {
	ctx = namespaces.WithNamespace(ctx, s.ns)
	imgs, err := s.c.ImageService().List(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := s.c.ContainerService().List(ctx)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, c := range cs {
		used[c.Image] = true
	}
	out := make([]imageUse, 0, len(imgs))
	for _, i := range imgs {
		// the last use the driver wrote, else the record's last change
		last := labelTime(i.Labels, LastUsedLabel)
		if last.IsZero() {
			last = i.UpdatedAt
			if i.CreatedAt.After(last) {
				last = i.CreatedAt
			}
		}
		out = append(out, imageUse{name: i.Name, lastUsed: last, warmed: labelTime(i.Labels, WarmedLabel),
			pinned: pinned(i.Labels), inUse: used[i.Name]})
	}
	return out, nil
}

// usedPercent is the usage of the fullest filesystem holding one of
// paths, in percent of what a user may fill (as df reports it: blocks
// reserved for root count as neither used nor free).
func usedPercent(paths []string) (float64, error) {
	var worst float64
	for _, p := range paths {
		var fs unix.Statfs_t
		if err := unix.Statfs(p, &fs); err != nil {
			return 0, fmt.Errorf("failed to measure the filesystem of %s: %w", p, err)
		}
		used := fs.Blocks - fs.Bfree
		if total := used + fs.Bavail; total > 0 {
			worst = max(worst, float64(used)*100/float64(total))
		}
	}
	return worst, nil
}
