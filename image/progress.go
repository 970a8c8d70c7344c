package image

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/transfer"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Progress is how far a pull has come. Bytes and layers are those of the
// distinct layers of the image's manifest (for the pulled platform); layers
// already in the content store count as done.
type Progress struct {
	Done, Total        int64 // layer bytes fetched so far, of all layers
	Layers, LayersDone int   // layers in the manifest, and those complete
}

// pullTracker follows one pull: it counts the layer bytes that reach the
// content store and notes when data last arrived from the registry. When
// the plugin fetches, counting happens in the fetch path itself (a wrapped
// resolver and fetcher) and in a wrapper of the pull's image handlers, which
// learns the layers from the manifest and marks the ones the handlers
// complete. When containerd's transfer service fetches, its progress events
// say the same per descriptor (see event).
type pullTracker struct {
	mu        sync.Mutex
	layers    map[digest.Digest]*layerState
	manifests map[digest.Digest]bool // manifests whose layers are known
	pending   map[digest.Digest]bool // descriptors the transfer service is fetching
	fetched   map[digest.Digest]bool // descriptors it has in the store
	transfer  bool                   // a transfer is under way
	resolved  bool                   // it has begun on a first descriptor
	// manifestLayers reads the layers of a manifest in the content store.
	manifestLayers func(digest.Digest) ([]ocispec.Descriptor, error)

	active atomic.Int64 // requests in flight here: resolves and open fetches
	last   atomic.Int64 // unix nanos when data last arrived
}

type layerState struct {
	size, pos int64
	done      bool
}

func newPullTracker(manifestLayers func(digest.Digest) ([]ocispec.Descriptor, error)) *pullTracker {
	t := &pullTracker{
		layers:         map[digest.Digest]*layerState{},
		manifests:      map[digest.Digest]bool{},
		pending:        map[digest.Digest]bool{},
		fetched:        map[digest.Digest]bool{},
		manifestLayers: manifestLayers,
	}
	t.touch()
	return t
}

func (t *pullTracker) touch() { t.last.Store(time.Now().UnixNano()) }

// begin notes a request to the registry; the returned func ends it.
func (t *pullTracker) begin() func() {
	t.touch()
	t.active.Add(1)
	var once sync.Once
	return func() { once.Do(func() { t.active.Add(-1) }) }
}

// idle is how long no data has arrived while something was expected from
// the registry: a request in flight here, or the transfer service resolving
// or fetching a descriptor. It is 0 when nothing is (the pull is between
// fetches or unpacking).
func (t *pullTracker) idle(now time.Time) time.Duration {
	t.mu.Lock()
	waiting := t.transfer && (!t.resolved || len(t.pending) > 0)
	t.mu.Unlock()
	if !waiting && t.active.Load() == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, t.last.Load()))
}

func (t *pullTracker) addLayers(descs []ocispec.Descriptor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range descs {
		if !images.IsLayerType(d.MediaType) {
			continue
		}
		if _, ok := t.layers[d.Digest]; !ok {
			t.layers[d.Digest] = &layerState{size: d.Size}
		}
	}
}

// setPos records that the fetch of d has reached byte pos.
func (t *pullTracker) setPos(d digest.Digest, pos int64) {
	t.mu.Lock()
	if l := t.layers[d]; l != nil {
		l.pos = pos
	}
	t.mu.Unlock()
}

func (t *pullTracker) markDone(d digest.Digest) {
	t.mu.Lock()
	if l := t.layers[d]; l != nil {
		l.done = true
	}
	t.mu.Unlock()
}

// complete marks every layer done: the pull succeeded, so all of them are
// in the store (or unpacked already and not needed).
func (t *pullTracker) complete() {
	t.mu.Lock()
	for _, l := range t.layers {
		l.done = true
	}
	t.mu.Unlock()
}

func (t *pullTracker) snapshot() Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	var p Progress
	for _, l := range t.layers {
		p.Layers++
		p.Total += l.size
		switch {
		case l.done:
			p.LayersDone++
			p.Done += l.size
		default:
			p.Done += min(max(l.pos, 0), l.size)
		}
	}
	return p
}

// wrapHandler wraps the pull's image handler: a manifest's layer children
// become the layers tracked, and a layer whose handler returns is complete
// (fetched, or found in the store).
func (t *pullTracker) wrapHandler(h images.Handler) images.Handler {
	return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		children, err := h.Handle(ctx, desc)
		if err != nil {
			return children, err
		}
		if images.IsManifestType(desc.MediaType) {
			t.addLayers(children)
		}
		t.markDone(desc.Digest)
		return children, nil
	})
}

// monitor publishes progress at most every interval (when it changed), and
// cancels the pull with ErrPullStalled when requests are in flight but no
// data has arrived for stall (never when stall <= 0). It returns when stop
// is closed.
func (t *pullTracker) monitor(stop <-chan struct{}, interval, stall time.Duration, publish func(Progress), cancel context.CancelCauseFunc) {
	tick := interval
	if stall > 0 {
		tick = min(tick, max(stall/4, 10*time.Millisecond))
	}
	tick = min(tick, time.Second)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	var (
		lastSent Progress
		sentAt   time.Time
		sent     bool
	)
	for {
		select {
		case <-stop:
			return
		case now := <-ticker.C:
			if stall > 0 {
				if idle := t.idle(now); idle >= stall {
					p := t.snapshot()
					cancel(fmt.Errorf("%w: no data received from the registry for %s (%d of %d layer bytes fetched)",
						ErrPullStalled, idle.Round(time.Millisecond), p.Done, p.Total))
					return
				}
			}
			if publish == nil || (sent && now.Sub(sentAt) < interval) {
				continue
			}
			if p := t.snapshot(); p.Layers > 0 && (!sent || p != lastSent) {
				publish(p)
				lastSent, sentAt, sent = p, now, true
			}
		}
	}
}

// trackingResolver hands out fetchers that count what they fetch.
type trackingResolver struct {
	remotes.Resolver
	t *pullTracker
}

func (r trackingResolver) Resolve(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	end := r.t.begin()
	defer end()
	name, desc, err := r.Resolver.Resolve(ctx, ref)
	if err == nil {
		r.t.touch()
	}
	return name, desc, err
}

// SetOptions passes the pull's download options (concurrency, limiter) on
// to the resolver underneath, as client.Pull would without the wrapper.
func (r trackingResolver) SetOptions(options ...transfer.ImageResolverOption) {
	if ro, ok := r.Resolver.(remotes.ResolverWithOptions); ok {
		ro.SetOptions(options...)
	}
}

func (r trackingResolver) Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error) {
	f, err := r.Resolver.Fetcher(ctx, ref)
	if err != nil {
		return nil, err
	}
	return trackingFetcher{f: f, t: r.t}, nil
}

type trackingFetcher struct {
	f remotes.Fetcher
	t *pullTracker
}

func (f trackingFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	end := f.t.begin()
	rc, err := f.f.Fetch(ctx, desc)
	if err != nil {
		end()
		return nil, err
	}
	f.t.touch()
	cr := &countingReader{rc: rc, t: f.t, digest: desc.Digest, end: end}
	if s, ok := rc.(io.Seeker); ok {
		// content.Copy seeks to resume a partial ingest: keep that.
		return &countingReadSeeker{countingReader: cr, s: s}, nil
	}
	return cr, nil
}

// countingReader reports every read of a fetched blob to the tracker.
type countingReader struct {
	rc     io.ReadCloser
	t      *pullTracker
	digest digest.Digest
	end    func()
	pos    atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		r.t.touch()
		r.t.setPos(r.digest, r.pos.Add(int64(n)))
	}
	return n, err
}

func (r *countingReader) Close() error {
	r.end()
	return r.rc.Close()
}

type countingReadSeeker struct {
	*countingReader
	s io.Seeker
}

func (r *countingReadSeeker) Seek(offset int64, whence int) (int64, error) {
	pos, err := r.s.Seek(offset, whence)
	if err == nil {
		r.pos.Store(pos)
		r.t.setPos(r.digest, pos)
	}
	return pos, err
}
