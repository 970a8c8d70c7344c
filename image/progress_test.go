package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/transfer"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func blobDesc(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

// fakeResolver serves blobs from memory; fetches of blobs in hang block
// until their context ends.
type fakeResolver struct {
	blobs map[digest.Digest][]byte
	hang  map[digest.Digest]bool
}

func (r *fakeResolver) Resolve(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	return ref, ocispec.Descriptor{}, nil
}
func (r *fakeResolver) Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error) {
	return r, nil
}
func (r *fakeResolver) Pusher(ctx context.Context, ref string) (remotes.Pusher, error) {
	return nil, errors.New("no push")
}
func (r *fakeResolver) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if r.hang[desc.Digest] {
		return io.NopCloser(ctxReader{ctx}), nil
	}
	return nopSeekCloser{bytes.NewReader(r.blobs[desc.Digest])}, nil
}

type ctxReader struct{ ctx context.Context }

func (r ctxReader) Read([]byte) (int, error) { <-r.ctx.Done(); return 0, r.ctx.Err() }

type nopSeekCloser struct{ *bytes.Reader }

func (nopSeekCloser) Close() error { return nil }

func TestTrackerCountsLayerBytes(t *testing.T) {
	layer1 := bytes.Repeat([]byte("a"), 100_000)
	layer2 := bytes.Repeat([]byte("b"), 50_000)
	config := []byte(`{"config":{}}`)
	l1, l2 := blobDesc(ocispec.MediaTypeImageLayerGzip, layer1), blobDesc(ocispec.MediaTypeImageLayer, layer2)
	cfg := blobDesc(ocispec.MediaTypeImageConfig, config)
	manifest := blobDesc(ocispec.MediaTypeImageManifest, []byte("manifest"))
	res := &fakeResolver{blobs: map[digest.Digest][]byte{l1.Digest: layer1, l2.Digest: layer2, cfg.Digest: config}}

	tr := newPullTracker(nil)
	// The manifest's handler yields its children: the layers are learnt.
	h := tr.wrapHandler(images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if desc.Digest == manifest.Digest {
			return []ocispec.Descriptor{cfg, l1, l2}, nil
		}
		return nil, nil
	}))
	if _, err := h.Handle(context.Background(), manifest); err != nil {
		t.Fatal(err)
	}
	if p := tr.snapshot(); p != (Progress{Total: 150_000, Layers: 2}) {
		t.Fatalf("after the manifest: %+v", p)
	}

	f, err := trackingResolver{Resolver: res, t: tr}.Fetcher(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	// The config's bytes are activity, not layer progress.
	rc, err := f.Fetch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	if p := tr.snapshot(); p.Done != 0 {
		t.Fatalf("config bytes counted: %+v", p)
	}

	rc, err = f.Fetch(context.Background(), l1)
	if err != nil {
		t.Fatal(err)
	}
	if tr.active.Load() != 1 {
		t.Fatalf("%d requests in flight, want 1", tr.active.Load())
	}
	if _, err := io.CopyN(io.Discard, rc, 30_000); err != nil {
		t.Fatal(err)
	}
	if p := tr.snapshot(); p.Done != 30_000 || p.LayersDone != 0 {
		t.Fatalf("after 30000 bytes: %+v", p)
	}
	// Resuming a partial ingest seeks: the position counts, and the
	// reader still seeks.
	s, ok := rc.(io.Seeker)
	if !ok {
		t.Fatal("the seekable fetch reader lost its Seek")
	}
	if _, err := s.Seek(60_000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if p := tr.snapshot(); p.Done != 60_000 {
		t.Fatalf("after seeking to 60000: %+v", p)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	rc.Close() // closing twice ends the request once
	if tr.active.Load() != 0 {
		t.Fatalf("%d requests in flight after close, want 0", tr.active.Load())
	}
	if _, err := h.Handle(context.Background(), l1); err != nil {
		t.Fatal(err)
	}
	if p := tr.snapshot(); p != (Progress{Done: 100_000, Total: 150_000, Layers: 2, LayersDone: 1}) {
		t.Fatalf("after layer 1: %+v", p)
	}
	// Layer 2 is found in the store: its handler returns without a fetch.
	if _, err := h.Handle(context.Background(), l2); err != nil {
		t.Fatal(err)
	}
	if p := tr.snapshot(); p != (Progress{Done: 150_000, Total: 150_000, Layers: 2, LayersDone: 2}) {
		t.Fatalf("after layer 2: %+v", p)
	}
}

func TestMonitorCancelsStalledPull(t *testing.T) {
	layer := bytes.Repeat([]byte("x"), 1000)
	l := blobDesc(ocispec.MediaTypeImageLayerGzip, layer)
	res := &fakeResolver{hang: map[digest.Digest]bool{l.Digest: true}}
	tr := newPullTracker(nil)
	tr.addLayers([]ocispec.Descriptor{l})

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := make(chan struct{})
	defer close(stop)
	go tr.monitor(stop, time.Hour, 100*time.Millisecond, nil, cancel)

	// Between requests nothing is expected to arrive: no stall.
	tr.begin()()
	time.Sleep(300 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("cancelled while no request was in flight: %v", context.Cause(ctx))
	}

	f, _ := trackingResolver{Resolver: res, t: tr}.Fetcher(ctx, "x")
	start := time.Now()
	rc, err := f.Fetch(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = rc.Read(make([]byte, 10))
	if err == nil {
		t.Fatal("read of a hanging fetch returned")
	}
	checkStalled(t, ctx, start)
}

// checkStalled asserts that ctx was cancelled as stalled about 100ms after
// start, with none of a 1000-byte layer fetched.
func checkStalled(t *testing.T, ctx context.Context, start time.Time) {
	t.Helper()
	if waited := time.Since(start); waited < 100*time.Millisecond || waited > 2*time.Second {
		t.Errorf("stall detected after %s, want about 100ms", waited)
	}
	cause := context.Cause(ctx)
	if !errors.Is(cause, ErrPullStalled) || !IsRecoverable(cause) {
		t.Fatalf("cause %v, want a recoverable stall", cause)
	}
	if !strings.Contains(cause.Error(), "pull stalled: no data received from the registry for") || !strings.Contains(cause.Error(), "0 of 1000 layer bytes") {
		t.Errorf("stall message %q", cause)
	}
}

// checkSteadyIsNoStall runs the monitor (30ms interval, 100ms stall
// timeout) on tr, which follows a pull of one 20-byte layer, while feed
// brings the bytes in over about 800ms, and asserts that the pull was not
// cancelled and its reports rose to all 20 bytes.
func checkSteadyIsNoStall(t *testing.T, tr *pullTracker, feed func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := make(chan struct{})
	var published []Progress
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.monitor(stop, 30*time.Millisecond, 100*time.Millisecond, func(p Progress) { published = append(published, p) }, cancel)
	}()
	feed(ctx)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	<-done
	if ctx.Err() != nil {
		t.Fatalf("a steady pull was cancelled: %v", context.Cause(ctx))
	}
	if len(published) < 5 {
		t.Fatalf("%d progress reports over 800ms at a 30ms interval", len(published))
	}
	for i, p := range published {
		if p.Total != 20 || p.Layers != 1 || (i > 0 && p.Done <= published[i-1].Done) {
			t.Fatalf("report %d of %+v: not increasing, or repeated unchanged", i, published)
		}
	}
	if last := published[len(published)-1]; last.Done != 20 {
		t.Errorf("last report %+v, want all 20 bytes", last)
	}
}

func TestMonitorSlowButSteadyIsNoStall(t *testing.T) {
	layer := bytes.Repeat([]byte("x"), 20)
	l := blobDesc(ocispec.MediaTypeImageLayerGzip, layer)
	tr := newPullTracker(nil)
	tr.addLayers([]ocispec.Descriptor{l})
	checkSteadyIsNoStall(t, tr, func(ctx context.Context) {
		f, _ := trackingResolver{Resolver: &fakeResolver{blobs: map[digest.Digest][]byte{l.Digest: layer}}, t: tr}.Fetcher(ctx, "x")
		rc, _ := f.Fetch(ctx, l)
		buf := make([]byte, 1)
		for i := 0; i < 20; i++ { // 20 bytes over about 800ms, well past the stall timeout
			if _, err := rc.Read(buf); err != nil {
				t.Fatal(err)
			}
			time.Sleep(40 * time.Millisecond)
		}
		rc.Close()
	})
}

func TestFlightPublishesToEveryWatcher(t *testing.T) {
	var g flightGroup[int]
	release := make(chan struct{})
	publishing := make(chan func(Progress), 1)
	fn := func(ctx context.Context, publish func(Progress)) (int, error) {
		publishing <- publish
		<-release
		publish(Progress{Done: 10, Total: 10})
		return 1, nil
	}

	var mu sync.Mutex
	seen := map[string][]int64{}
	watch := func(name string) func(Progress) {
		return func(p Progress) { mu.Lock(); seen[name] = append(seen[name], p.Done); mu.Unlock() }
	}
	results := make(chan error, 2)
	go func() {
		_, err, _ := g.doWatched(context.Background(), "k", time.Minute, watch("first"), fn)
		results <- err
	}()
	publish := <-publishing
	leaver, leave := context.WithCancel(context.Background())
	var left atomic.Bool
	leftDone := make(chan struct{})
	go func() {
		g.doWatched(leaver, "k", time.Minute, func(p Progress) {
			if left.Load() {
				t.Errorf("watcher called after its caller returned: %+v", p)
			}
			watch("leaver")(p)
		}, fn)
		left.Store(true)
		close(leftDone)
	}()
	go func() {
		_, err, _ := g.doWatched(context.Background(), "k", time.Minute, watch("joiner"), fn)
		results <- err
	}()
	waitFor(t, func() bool { return waiters(&g, "k") == 3 })

	publish(Progress{Done: 5, Total: 10})
	leave()
	<-leftDone
	close(release)
	for i := 0; i < 2; i++ {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for name, want := range map[string]string{"first": "[5 10]", "joiner": "[5 10]", "leaver": "[5]"} {
		if got := fmt.Sprint(seen[name]); got != want {
			t.Errorf("%s saw %s, want %s", name, got, want)
		}
	}
}

type optionsResolver struct {
	fakeResolver
	got int
}

func (r *optionsResolver) SetOptions(options ...transfer.ImageResolverOption) { r.got += len(options) }

func TestTrackingResolverPassesOptionsOn(t *testing.T) {
	inner := &optionsResolver{}
	var r remotes.Resolver = trackingResolver{Resolver: inner, t: newPullTracker(nil)}
	ro, ok := r.(remotes.ResolverWithOptions)
	if !ok {
		t.Fatal("the wrapper hides SetOptions from client.Pull")
	}
	ro.SetOptions(transfer.WithMaxConcurrentDownloads(3), transfer.WithConcurrentLayerFetchBuffer(0))
	if inner.got != 2 {
		t.Fatalf("resolver underneath got %d options, want 2", inner.got)
	}
}
