package image

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/transfer"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeManifests serves the layers of manifests as a pull's tracker reads
// them from the content store, and counts the reads.
type fakeManifests struct {
	mu     sync.Mutex
	layers map[digest.Digest][]ocispec.Descriptor
	reads  int
}

func (f *fakeManifests) read(d digest.Digest) ([]ocispec.Descriptor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	l, ok := f.layers[d]
	if !ok {
		return nil, fmt.Errorf("manifest %s: %w", d, errdefs.ErrNotFound)
	}
	return l, nil
}

// ev is a progress event of the transfer service about desc.
func ev(event string, desc ocispec.Descriptor, progress int64, parents ...string) transfer.Progress {
	return transfer.Progress{Event: event, Name: desc.Digest.String(), Parents: parents, Progress: progress, Total: desc.Size, Desc: &desc}
}

func TestTrackerCountsTransferEvents(t *testing.T) {
	l1 := blobDesc(ocispec.MediaTypeImageLayerGzip, bytes.Repeat([]byte("a"), 100_000))
	l2 := blobDesc(ocispec.MediaTypeImageLayer, bytes.Repeat([]byte("b"), 50_000))
	cfg := blobDesc(ocispec.MediaTypeImageConfig, []byte(`{"config":{}}`))
	manifest := blobDesc(ocispec.MediaTypeImageManifest, []byte("manifest"))
	mf := &fakeManifests{layers: map[digest.Digest][]ocispec.Descriptor{manifest.Digest: {l1, l2}}}
	parent := "manifest-example.com/app@" + manifest.Digest.String() // as MakeRefKey writes a named one
	tr := newPullTracker(mf.read)

	tr.event(transfer.Progress{Event: "Resolving from OCI Registry (example.com/app:1)"})
	tr.event(ev(eventWaiting, manifest, 0, "example.com/app:1"))
	tr.event(ev(eventComplete, manifest, manifest.Size, "example.com/app:1"))
	if p := tr.snapshot(); p != (Progress{}) {
		t.Fatalf("before any child of the manifest: %+v", p)
	}
	// The first child of the manifest makes its layers known, all of them.
	tr.event(ev(eventWaiting, cfg, 0, parent))
	if p := tr.snapshot(); p != (Progress{Total: 150_000, Layers: 2}) {
		t.Fatalf("after the config's first event: %+v", p)
	}
	// The config's bytes are no layer progress.
	tr.event(ev(eventDownloading, cfg, 5, parent))
	tr.event(ev(eventComplete, cfg, cfg.Size, parent))
	if p := tr.snapshot(); p.Done != 0 {
		t.Fatalf("config bytes counted: %+v", p)
	}

	tr.event(ev(eventWaiting, l1, 0, parent))
	tr.event(ev(eventWaiting, l2, 0, parent))
	tr.event(ev(eventDownloading, l1, 30_000, parent))
	if p := tr.snapshot(); p.Done != 30_000 || p.LayersDone != 0 {
		t.Fatalf("after 30000 bytes: %+v", p)
	}
	// A late, lower report does not take bytes back.
	tr.event(ev(eventDownloading, l1, 60_000, parent))
	tr.event(ev(eventDownloading, l1, 20_000, parent))
	if p := tr.snapshot(); p.Done != 60_000 {
		t.Fatalf("after 60000 bytes and a late report: %+v", p)
	}
	tr.event(ev(eventComplete, l1, l1.Size, parent))
	// Unpacking is no fetch: its events change nothing.
	tr.event(ev(eventExtracting, l1, 10, parent))
	tr.event(ev(eventExtracted, l1, l1.Size, parent))
	if p := tr.snapshot(); p != (Progress{Done: 100_000, Total: 150_000, Layers: 2, LayersDone: 1}) {
		t.Fatalf("after layer 1: %+v", p)
	}
	// Layer 2 is in the store already.
	tr.event(ev(eventExists, l2, l2.Size))
	if p := tr.snapshot(); p != (Progress{Done: 150_000, Total: 150_000, Layers: 2, LayersDone: 2}) {
		t.Fatalf("after layer 2: %+v", p)
	}
	if mf.reads != 1 {
		t.Errorf("manifest read %d times, want once", mf.reads)
	}
}

func TestTrackerRetriesUnreadableManifest(t *testing.T) {
	l := blobDesc(ocispec.MediaTypeImageLayer, []byte("layer"))
	manifest := blobDesc(ocispec.MediaTypeImageManifest, []byte("manifest"))
	mf := &fakeManifests{layers: map[digest.Digest][]ocispec.Descriptor{}}
	tr := newPullTracker(mf.read)
	parent := "manifest-" + manifest.Digest.String()
	tr.event(ev(eventWaiting, l, 0, parent, "index-sha256:not-a-manifest"))
	if p := tr.snapshot(); p.Layers != 0 {
		t.Fatalf("layers from an unreadable manifest: %+v", p)
	}
	mf.layers[manifest.Digest] = []ocispec.Descriptor{l}
	tr.event(ev(eventDownloading, l, 2, parent))
	if p := tr.snapshot(); p != (Progress{Done: 2, Total: 5, Layers: 1}) {
		t.Fatalf("after the manifest became readable: %+v", p)
	}
}

// expectIdle asserts whether the tracker counts the time since the last
// data as a stall.
func expectIdle(t *testing.T, tr *pullTracker, when string, want bool) {
	t.Helper()
	time.Sleep(5 * time.Millisecond)
	if got := tr.idle(time.Now()) > 0; got != want {
		t.Fatalf("%s: waiting for data = %v, want %v", when, got, want)
	}
}

func TestTrackerIdleOnlyWhileWaitingForData(t *testing.T) {
	l := blobDesc(ocispec.MediaTypeImageLayer, []byte("layer"))
	manifest := blobDesc(ocispec.MediaTypeImageManifest, []byte("manifest"))
	mf := &fakeManifests{layers: map[digest.Digest][]ocispec.Descriptor{manifest.Digest: {l}}}
	tr := newPullTracker(mf.read)
	parent := "manifest-" + manifest.Digest.String()

	expectIdle(t, tr, "before the pull", false)
	end := tr.begin()
	expectIdle(t, tr, "while resolving here", true)
	end()
	expectIdle(t, tr, "after resolving here", false)
	endTransfer := tr.beginTransfer()
	expectIdle(t, tr, "while the daemon resolves", true)
	tr.event(ev(eventWaiting, manifest, 0, "ref"))
	expectIdle(t, tr, "while the manifest is fetched", true)
	tr.event(ev(eventComplete, manifest, manifest.Size, "ref"))
	expectIdle(t, tr, "between fetches", false)
	tr.event(ev(eventWaiting, l, 0, parent))
	expectIdle(t, tr, "while a layer is fetched", true)
	tr.event(ev(eventComplete, l, l.Size, parent))
	tr.event(ev(eventExtracting, l, 1, parent))
	expectIdle(t, tr, "while the daemon unpacks", false)
	tr.event(ev(eventWaiting, l, 0, parent)) // a late event of a done layer
	expectIdle(t, tr, "after a late event", false)
	endTransfer()
	expectIdle(t, tr, "after the transfer", false)
}

func TestMonitorCancelsStalledTransfer(t *testing.T) {
	l := blobDesc(ocispec.MediaTypeImageLayerGzip, bytes.Repeat([]byte("x"), 1000))
	manifest := blobDesc(ocispec.MediaTypeImageManifest, []byte("manifest"))
	mf := &fakeManifests{layers: map[digest.Digest][]ocispec.Descriptor{manifest.Digest: {l}}}
	tr := newPullTracker(mf.read)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := make(chan struct{})
	defer close(stop)
	go tr.monitor(stop, time.Hour, 100*time.Millisecond, nil, cancel)

	// Between fetches nothing is expected to arrive: no stall.
	defer tr.beginTransfer()()
	tr.event(ev(eventWaiting, manifest, 0, "ref"))
	tr.event(ev(eventComplete, manifest, manifest.Size, "ref"))
	time.Sleep(300 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("cancelled while nothing was being fetched: %v", context.Cause(ctx))
	}

	start := time.Now()
	tr.event(ev(eventWaiting, l, 0, "manifest-"+manifest.Digest.String()))
	<-ctx.Done()
	checkStalled(t, ctx, start)
}

func TestMonitorSteadyTransferIsNoStall(t *testing.T) {
	l := blobDesc(ocispec.MediaTypeImageLayerGzip, bytes.Repeat([]byte("x"), 20))
	manifest := blobDesc(ocispec.MediaTypeImageManifest, []byte("manifest"))
	mf := &fakeManifests{layers: map[digest.Digest][]ocispec.Descriptor{manifest.Digest: {l}}}
	tr := newPullTracker(mf.read)
	parent := "manifest-" + manifest.Digest.String()
	checkSteadyIsNoStall(t, tr, func(context.Context) {
		defer tr.beginTransfer()()
		tr.event(ev(eventWaiting, l, 0, parent))
		for i := 1; i <= 20; i++ { // 20 bytes over about 800ms, well past the stall timeout
			time.Sleep(40 * time.Millisecond)
			tr.event(ev(eventDownloading, l, int64(i), parent))
		}
		tr.event(ev(eventComplete, l, l.Size, parent))
	})
}

func TestPlatformsFor(t *testing.T) {
	cases := []struct{ spec, want string }{
		{"linux/amd64", "[linux/amd64 linux/386]"},
		{"linux/amd64/v3", "[linux/amd64/v3 linux/amd64/v2 linux/amd64 linux/386]"},
		{"linux/arm64", "[linux/arm64 linux/arm/v8 linux/arm/v7 linux/arm/v6 linux/arm/v5]"},
		{"linux/arm64/v8.2", "[linux/arm64/v8.2 linux/arm64/v8.1 linux/arm64 linux/arm/v8 linux/arm/v7 linux/arm/v6 linux/arm/v5]"},
		{"linux/arm/v7", "[linux/arm/v7 linux/arm/v6 linux/arm/v5]"},
		{"linux/arm/v5", "[linux/arm/v5]"},
		{"linux/s390x", "[linux/s390x]"},
		{"windows/amd64", "[windows/amd64 windows/386]"},
	}
	for _, tc := range cases {
		t.Run(tc.spec, func(t *testing.T) {
			spec := platforms.MustParse(tc.spec)
			got := platformsFor(spec)
			var names []string
			for _, p := range got {
				names = append(names, platforms.FormatAll(p))
			}
			if fmt.Sprint(names) != tc.want {
				t.Fatalf("platformsFor(%s) = %v, want %s", tc.spec, names, tc.want)
			}
			only := platforms.Only(spec)
			for i, p := range got {
				if !only.Match(p) || (i > 0 && only.Less(p, got[i-1])) {
					t.Fatalf("%v: %s out of place for platforms.Only(%s)", names, platforms.Format(p), tc.spec)
				}
			}
		})
	}
	// This machine's platform comes first, with what it also runs.
	if got := platformsFor(platforms.DefaultSpec()); !platforms.Only(platforms.DefaultSpec()).Match(got[0]) || platforms.Format(got[0]) != platforms.Format(platforms.Normalize(platforms.DefaultSpec())) {
		t.Fatalf("default platforms %v", got)
	}
}

func TestCredentialHelperHandsOutOnlyAllowedHosts(t *testing.T) {
	auth := &Auth{Username: "u", Password: "p", ServerAddress: "r.example.com"}
	h := credentialHelper(credentialsFor(auth, "r.example.com", []string{"mirror.internal"}))
	for host, want := range map[string]bool{"r.example.com": true, "mirror.internal": true, "evil.example.com": false} {
		c, err := h.GetCredentials(context.Background(), "r.example.com/app:1", host)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if got := c.Username == "u" && c.Secret == "p"; got != want || (!want && (c.Username != "" || c.Secret != "")) {
			t.Errorf("%s: got %+v, want credentials %v", host, c, want)
		}
	}
	anon, err := credentialHelper(credentialsFor(nil, "r.example.com", nil)).GetCredentials(context.Background(), "r", "r.example.com")
	if err != nil || anon.Username != "" || anon.Secret != "" {
		t.Fatalf("anonymous: %+v %v", anon, err)
	}
}
