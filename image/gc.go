package image

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
)

// Image labels that keep an image from garbage collection.
const (
	// PinnedLabel is containerd CRI's pin: io.cri-containerd.pinned=pinned.
	PinnedLabel = "io.cri-containerd.pinned"
	// DriverPinnedLabel is this driver's: nomad.driver.pinned=true.
	DriverPinnedLabel = "nomad.driver.pinned"
)

// DefaultGCDelay is how long an image stays unused before it is removed.
const DefaultGCDelay = 3 * time.Minute

// GCConfig is the plugin's gc block for images.
type GCConfig struct {
	Enabled bool          // gc.image
	Delay   time.Duration // gc.image_delay
}

// gcStore is what the collector asks of containerd.
type gcStore interface {
	inUse(ctx context.Context, ref string) (bool, error)
	pinned(ctx context.Context, ref string) (bool, error)
	remove(ctx context.Context, ref string) error
	unused(ctx context.Context) ([]string, error)
}

// GC removes images that no container uses once they have been unused for
// the delay. It is event driven: Release arms one timer per image, Use
// disarms it, and the check at expiry asks containerd again, so an image a
// container still references (or a pinned one) is never removed.
type GC struct {
	cfg    GCConfig
	store  gcStore
	logger hclog.Logger

	mu      sync.Mutex
	timers  map[string]*pending
	stopped bool
}

// pending is one armed removal.
type pending struct{ timer *time.Timer }

// NewGC returns the image collector for namespace of containerd c.
func NewGC(c *client.Client, namespace string, cfg GCConfig, logger hclog.Logger) *GC {
	return newGC(cfg, containerdGCStore{c: c, ns: namespace}, logger)
}

func newGC(cfg GCConfig, store gcStore, logger hclog.Logger) *GC {
	if cfg.Delay <= 0 {
		cfg.Delay = DefaultGCDelay
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &GC{cfg: cfg, store: store, logger: logger.Named("gc"), timers: map[string]*pending{}}
}

// Use cancels a pending removal of ref: a task starts with it.
func (g *GC) Use(ref string) {
	if !g.cfg.Enabled {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if p, ok := g.timers[ref]; ok {
		p.timer.Stop()
		delete(g.timers, ref)
	}
}

// Release arms (or re-arms) the removal of ref after the delay: a task
// that used it is gone.
func (g *GC) Release(ref string) {
	if !g.cfg.Enabled || ref == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return
	}
	if p, ok := g.timers[ref]; ok {
		p.timer.Stop()
	}
	p := &pending{}
	p.timer = time.AfterFunc(g.cfg.Delay, func() { g.expire(ref, p) })
	g.timers[ref] = p
}

// Rescan releases every image that no container uses, so that removals
// pending when the plugin stopped are armed again.
func (g *GC) Rescan(ctx context.Context) error {
	if !g.cfg.Enabled {
		return nil
	}
	refs, err := g.store.unused(ctx)
	if err != nil {
		return fmt.Errorf("failed to list unused images: %w", err)
	}
	for _, r := range refs {
		g.Release(r)
	}
	return nil
}

// Stop disarms every pending removal.
func (g *GC) Stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
	for ref, p := range g.timers {
		p.timer.Stop()
		delete(g.timers, ref)
	}
}

// expire removes ref unless it was used or released again meanwhile, a
// container references it, or it is pinned.
func (g *GC) expire(ref string, p *pending) {
	g.mu.Lock()
	if g.timers[ref] != p || g.stopped {
		g.mu.Unlock()
		return
	}
	delete(g.timers, ref)
	g.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	logger := g.logger.With("image", ref)
	if used, err := g.store.inUse(ctx, ref); err != nil || used {
		logger.Debug("image kept", "in_use", used, "error", err)
		return
	}
	if pinned, err := g.store.pinned(ctx, ref); err != nil || pinned {
		logger.Debug("image kept", "pinned", pinned, "error", err)
		return
	}
	if err := g.store.remove(ctx, ref); err != nil {
		logger.Warn("failed to remove unused image", "error", err)
		return
	}
	logger.Info("removed unused image", "unused_for", g.cfg.Delay)
}

// containerdGCStore is gcStore on a containerd namespace.
type containerdGCStore struct {
	c  *client.Client
	ns string
}

func (s containerdGCStore) inUse(ctx context.Context, ref string) (bool, error) {
	cs, err := s.c.ContainerService().List(namespaces.WithNamespace(ctx, s.ns), fmt.Sprintf("image==%q", ref))
	return len(cs) > 0, err
}

func (s containerdGCStore) pinned(ctx context.Context, ref string) (bool, error) {
	img, err := s.c.ImageService().Get(namespaces.WithNamespace(ctx, s.ns), ref)
	if errdefs.IsNotFound(err) {
		return true, nil // gone already: nothing to remove
	}
	if err != nil {
		return false, err
	}
	return img.Labels[PinnedLabel] == "pinned" || img.Labels[DriverPinnedLabel] == "true", nil
}

func (s containerdGCStore) remove(ctx context.Context, ref string) error {
	err := s.c.ImageService().Delete(namespaces.WithNamespace(ctx, s.ns), ref, images.SynchronousDelete())
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

func (s containerdGCStore) unused(ctx context.Context) ([]string, error) {
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
	var out []string
	for _, i := range imgs {
		if !used[i.Name] {
			out = append(out, i.Name)
		}
	}
	return out, nil
}
