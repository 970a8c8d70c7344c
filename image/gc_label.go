package image

import (
	"context"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// Labels the collector keeps on the images it has seen used, so that what
// it knows of their use outlives the plugin (`ctr -n nomad images ls`
// shows them). Both are RFC 3339 times in UTC.
const (
	// LastUsedLabel is when a task of the plugin last began (its container
	// created) or ended with the image.
	LastUsedLabel = "nomad.driver.last_used"
	// WarmedLabel is when a pull_only task last got the image: disk
	// pressure keeps it for gc.image_delay from then.
	WarmedLabel = "nomad.driver.warmed"
)

// lastUseResolution is how old the last use written on an image must be
// before a new use is written: a busy image costs one write a minute.
const lastUseResolution = time.Minute

// labelTime reads the time label key of labels; zero when it is absent or
// not a time.
func labelTime(labels map[string]string, key string) time.Time {
	t, err := time.Parse(time.RFC3339, labels[key])
	if err != nil {
		return time.Time{}
	}
	return t
}

// rememberLocked records that ref was used at t (and warmed, with warm),
// in memory and on the image's labels; the last use is written only when
// the one written before is lastUseResolution old. The write runs in the
// background: an image removed meanwhile is no error. g.mu is held.
func (g *GC) rememberLocked(ref string, t time.Time, warm bool) {
	g.lastUsed[ref] = t
	stamp := t.UTC().Format(time.RFC3339)
	labels := map[string]string{}
	if warm {
		g.warmed[ref] = t
		labels[WarmedLabel] = stamp
	}
	if last, ok := g.written[ref]; warm || !ok || t.Sub(last) >= lastUseResolution {
		labels[LastUsedLabel] = stamp
		g.written[ref] = t
	}
	if len(labels) == 0 || g.stopped {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ctx, cancel := context.WithTimeout(g.ctx, cleanupTimeout)
		defer cancel()
		if err := g.store.label(ctx, ref, labels); err != nil && !errdefs.IsNotFound(err) {
			g.logger.Debug("failed to record the image's last use", "image", ref, "error", err)
			g.mu.Lock()
			if g.written[ref].Equal(t) {
				delete(g.written, ref) // the next use writes again
			}
			g.mu.Unlock()
		}
	}()
}

// forgetLocked drops what is known in memory of the use of ref, removed.
func (g *GC) forgetLocked(ref string) {
	delete(g.lastUsed, ref)
	delete(g.warmed, ref)
	delete(g.written, ref)
}

// annotateLocked adds to the inventory imgs what the collector knows
// beyond containerd: later uses, starts in flight, warm holds and pending
// delays. g.mu is held.
func (g *GC) annotateLocked(imgs []imageUse, now time.Time) {
	for i := range imgs {
		im := &imgs[i]
		if t, ok := g.lastUsed[im.name]; ok && t.After(im.lastUsed) {
			im.lastUsed = t
		}
		if t, ok := g.warmed[im.name]; ok && t.After(im.warmed) {
			im.warmed = t
		}
		im.inUse = im.inUse || g.starting[im.name] > 0
		im.held = !im.warmed.IsZero() && now.Before(im.warmed.Add(g.cfg.Delay))
		im.delayed = g.timers[im.name] != nil
	}
}

func (s containerdGCStore) label(ctx context.Context, ref string, labels map[string]string) error {
	paths := make([]string, 0, len(labels))
	for k := range labels {
		paths = append(paths, "labels."+k)
	}
	_, err := s.c.ImageService().Update(namespaces.WithNamespace(ctx, s.ns), images.Image{Name: ref, Labels: labels}, paths...)
	return err
}
