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
	// DriverPinnedLabel is this driver's pin: nomad.driver.pinned=true
	// (set it with `ctr -n nomad images label REF nomad.driver.pinned=true`).
	DriverPinnedLabel = "nomad.driver.pinned"
)

// DefaultGCDelay is how long an image stays unused before it is removed.
const DefaultGCDelay = 3 * time.Minute

// GCConfig is the plugin's gc block for images.
type GCConfig struct {
	Enabled bool          // gc.image (default true)
	Delay   time.Duration // gc.image_delay (default 3m): how long an image must be unused before removal
	// Disk holds the disk-pressure watermarks; off when Disk.High is 0.
	Disk DiskPressure
	// Snapshotter is the snapshotter whose root, with the content
	// store's, disk pressure measures.
	Snapshotter string
}

// pinned reports whether image labels pin the image: it is never removed.
func pinned(labels map[string]string) bool {
	return labels[PinnedLabel] == "pinned" || labels[DriverPinnedLabel] == "true"
}

// gcStore is what the collector asks of containerd.
type gcStore interface {
	// containersUsing lists the containers whose image is ref.
	containersUsing(ctx context.Context, ref string) ([]string, error)
	// image returns the image record of ref (an errdefs not-found error
	// when there is none).
	image(ctx context.Context, ref string) (images.Image, error)
	// remove deletes the image record of ref, synchronously.
	remove(ctx context.Context, ref string) error
	// label sets labels on the image record of ref, leaving its others.
	label(ctx context.Context, ref string, labels map[string]string) error
	// unused lists the images no container uses.
	unused(ctx context.Context) ([]string, error)
}

// timer is the part of *time.Timer the collector uses.
type timer interface{ Stop() bool }

// afterFunc is time.AfterFunc, injectable for tests.
type afterFunc func(d time.Duration, f func()) timer

func realAfterFunc(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }

// GC removes images that no container uses once they have been unused for
// the delay. It is event driven: Release arms one timer per image, Use
// disarms it, and the check at expiry asks containerd again, so an image a
// container still references, or a pinned one, is never removed.
type GC struct {
	cfg       GCConfig
	store     gcStore
	afterFunc afterFunc
	now       func() time.Time
	logger    hclog.Logger

	ctx    context.Context // cancelled by Stop: aborts removals under way
	cancel context.CancelFunc
	wg     sync.WaitGroup // removals under way

	mu       sync.Mutex
	timers   map[string]*pending  // armed removals
	removing map[string]*pending  // removals under way
	starting map[string]int       // starts in flight, from Use to Started or Failed
	lastUsed map[string]time.Time // when a task last began or ended with the image
	warmed   map[string]time.Time // when a pull_only task last got the image
	written  map[string]time.Time // the last use written on the image's label
	stopped  bool

	disk diskWatch // disk-pressure checks; see gc_disk.go
}

// pending is one armed removal.
type pending struct {
	timer timer
	used  bool          // Use came after the timer fired: keep the image
	done  chan struct{} // closed when the removal under way ends
}

// NewGC returns the image collector for namespace of containerd c.
func NewGC(c *client.Client, namespace string, cfg GCConfig, logger hclog.Logger) *GC {
	return newGC(cfg, containerdGCStore{c: c, ns: namespace, snapshotter: cfg.Snapshotter}, realAfterFunc, logger)
}

func newGC(cfg GCConfig, store gcStore, after afterFunc, logger hclog.Logger) *GC {
	return newGCAt(cfg, store, after, time.Now, logger)
}

func newGCAt(cfg GCConfig, store gcStore, after afterFunc, now func() time.Time, logger hclog.Logger) *GC {
	if cfg.Delay <= 0 {
		cfg.Delay = DefaultGCDelay
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &GC{
		cfg: cfg, store: store, afterFunc: after, now: now, logger: logger.Named("gc"),
		ctx: ctx, cancel: cancel,
		timers: map[string]*pending{}, removing: map[string]*pending{}, starting: map[string]int{},
		lastUsed: map[string]time.Time{}, warmed: map[string]time.Time{}, written: map[string]time.Time{},
	}
	g.startDiskWatch()
	return g
}

// Use is called when a task starts with ref: it cancels a pending removal,
// and ref is kept until the start ends with Started (its container holds
// ref) or Failed, even when a removal armed meanwhile comes due. When the
// removal of ref is already under way, Use waits for it to end, so that the
// caller finds the image either kept or gone (and pulls it again).
func (g *GC) Use(ref string) {
	if !g.cfg.Enabled || ref == "" {
		return
	}
	g.mu.Lock()
	g.starting[ref]++
	g.lastUsed[ref] = g.now()
	if p, ok := g.timers[ref]; ok {
		p.timer.Stop()
		delete(g.timers, ref)
	}
	var done chan struct{}
	if p, ok := g.removing[ref]; ok {
		p.used = true
		done = p.done
	}
	g.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Started ends a start that Use began: its container exists and holds ref.
func (g *GC) Started(ref string) {
	if !g.cfg.Enabled || ref == "" {
		return
	}
	g.endStart(ref, false)
}

// Warmed ends a start that Use began for a pull_only task: no container
// holds ref, but disk pressure keeps it for gc.image_delay from now, as it
// keeps a running task's image (the delay itself begins when the task is
// destroyed, with Release).
func (g *GC) Warmed(ref string) {
	if !g.cfg.Enabled || ref == "" {
		return
	}
	g.endStart(ref, true)
}

// endStart ends a start that succeeded, recording the use (and the warm).
func (g *GC) endStart(ref string, warm bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.endStartLocked(ref)
	g.rememberLocked(ref, g.now(), warm)
}

// Failed ends a start that Use began and that failed: ref is released.
func (g *GC) Failed(ref string) {
	if !g.cfg.Enabled || ref == "" {
		return
	}
	g.mu.Lock()
	g.endStartLocked(ref)
	g.mu.Unlock()
	g.Release(ref)
}

func (g *GC) endStartLocked(ref string) {
	if g.starting[ref] <= 1 {
		delete(g.starting, ref)
		return
	}
	g.starting[ref]--
}

// Release is called when a task that used ref is destroyed: ref is removed
// after the delay unless a container uses it then, it is pinned, or Use(ref)
// comes first. A later Release starts the delay again.
func (g *GC) Release(ref string) {
	if !g.cfg.Enabled || ref == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return
	}
	g.rememberLocked(ref, g.now(), false)
	g.armLocked(ref)
}

// armLocked (re)starts the delay of ref. g.mu is held.
func (g *GC) armLocked(ref string) {
	if p, ok := g.timers[ref]; ok {
		p.timer.Stop()
	}
	p := &pending{}
	p.timer = g.afterFunc(g.cfg.Delay, func() { g.expire(ref, p) })
	g.timers[ref] = p
}

// Rescan arms the delay of every image that no container uses, so that
// removals pending when the plugin stopped are armed again. It records no
// use: the images keep the last use their labels say.
func (g *GC) Rescan(ctx context.Context) error {
	if !g.cfg.Enabled {
		return nil
	}
	refs, err := g.store.unused(ctx)
	if err != nil {
		return fmt.Errorf("failed to list unused images: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range refs {
		if !g.stopped {
			g.armLocked(r)
		}
	}
	return nil
}

// Stop disarms every pending removal, aborts those under way and waits for
// them to end. Release is a no-op afterwards.
func (g *GC) Stop() {
	g.mu.Lock()
	g.stopped = true
	for ref, p := range g.timers {
		p.timer.Stop()
		delete(g.timers, ref)
	}
	if g.disk.timer != nil {
		g.disk.timer.Stop()
	}
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}

// expire removes ref unless it was used or released again meanwhile, a
// container references it, or it is pinned.
func (g *GC) expire(ref string, p *pending) {
	g.mu.Lock()
	if g.timers[ref] != p || g.stopped {
		g.mu.Unlock()
		return
	}
	if g.removing[ref] != nil { // an earlier removal of ref is still under way
		p.timer = g.afterFunc(g.cfg.Delay, func() { g.expire(ref, p) })
		g.mu.Unlock()
		return
	}
	delete(g.timers, ref)
	g.beginRemovalLocked(ref, p)
	g.mu.Unlock()
	defer g.endRemoval(ref, p)

	ctx, cancel := context.WithTimeout(g.ctx, cleanupTimeout)
	defer cancel()
	if _, err := g.collect(ctx, ref, p, "unused for gc.image_delay", "unused_for", g.cfg.Delay); err != nil {
		g.logger.Warn("failed to remove unused image", "image", ref, "error", err)
	}
}

// beginRemovalLocked records that the removal p of ref is under way: Use
// of ref waits for it to end.
func (g *GC) beginRemovalLocked(ref string, p *pending) {
	p.done = make(chan struct{})
	g.removing[ref] = p
	g.wg.Add(1)
}

// endRemoval ends what beginRemovalLocked began.
func (g *GC) endRemoval(ref string, p *pending) {
	g.mu.Lock()
	delete(g.removing, ref)
	g.mu.Unlock()
	close(p.done)
	g.wg.Done()
}

// collect checks ref once more and removes it, logging why with the
// key/value pairs kv; it reports whether ref was removed.
func (g *GC) collect(ctx context.Context, ref string, p *pending, reason string, kv ...any) (bool, error) {
	logger := g.logger.With("image", ref)
	img, err := g.store.image(ctx, ref)
	if errdefs.IsNotFound(err) {
		logger.Debug("image kept", "reason", "already removed")
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to get image %s: %w", ref, err)
	}
	if pinned(img.Labels) {
		logger.Debug("image kept", "reason", "pinned", "digest", img.Target.Digest)
		return false, nil
	}
	ids, err := g.store.containersUsing(ctx, ref)
	if err != nil {
		return false, fmt.Errorf("failed to list containers using %s: %w", ref, err)
	}
	if len(ids) > 0 {
		logger.Debug("image kept", "reason", "in use", "containers", ids)
		return false, nil
	}
	g.mu.Lock()
	used := p.used || g.starting[ref] > 0
	g.mu.Unlock()
	if used {
		logger.Debug("image kept", "reason", "used by a task starting")
		return false, nil
	}
	if err := g.store.remove(ctx, ref); err != nil {
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("failed to delete image %s: %w", ref, err)
	}
	g.mu.Lock()
	if g.starting[ref] == 0 {
		g.forgetLocked(ref)
	}
	g.mu.Unlock()
	logger.Info("removed unused image", append([]any{"digest", img.Target.Digest, "reason", reason}, kv...)...)
	return true, nil
}

// containerdGCStore is gcStore on a containerd namespace.
type containerdGCStore struct {
	c           *client.Client
	ns          string
	snapshotter string
}

func (s containerdGCStore) containersUsing(ctx context.Context, ref string) ([]string, error) {
	cs, err := s.c.ContainerService().List(namespaces.WithNamespace(ctx, s.ns), fmt.Sprintf("image==%q", ref))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		if c.Image == ref { // the filter did it; this guards against a lax one
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}

func (s containerdGCStore) image(ctx context.Context, ref string) (images.Image, error) {
	return s.c.ImageService().Get(namespaces.WithNamespace(ctx, s.ns), ref)
}

func (s containerdGCStore) remove(ctx context.Context, ref string) error {
	return s.c.ImageService().Delete(namespaces.WithNamespace(ctx, s.ns), ref, images.SynchronousDelete())
}

func (s containerdGCStore) unused(ctx context.Context) ([]string, error) {
	imgs, err := s.inventory(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range imgs {
		if !i.inUse && !i.pinned {
			out = append(out, i.name)
		}
	}
	return out, nil
}
