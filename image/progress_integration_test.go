//go:build integration

package image_test

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// fillerImage pushes an image of filler layers of the given sizes as repo:1
// and returns it with its reference through the proxy.
func (b *bed) fillerImage(t *testing.T, repo string, sizes ...int) (*testbed.Image, string) {
	t.Helper()
	var layers []testbed.Layer
	for i, size := range sizes {
		l, err := testbed.FillerLayer("f", size, int64(1000+i))
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	img, err := testbed.BuildImage(ocispec.ImageConfig{Cmd: []string{"true"}}, layers...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.Push(b.ctx, b.reg.Host, repo+":1"); err != nil {
		t.Fatal(err)
	}
	return img, b.proxy.Host + "/" + repo + ":1"
}

func layerBytes(img *testbed.Image) (total int64) {
	for _, l := range img.Manifest.Layers {
		total += l.Size
	}
	return total
}

func (b *bed) manager(t *testing.T, cfg image.Config) *image.Manager {
	logger := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testbed.TestLog(t)})
	return image.NewManager(b.cd.Client, b.cd.Namespace, cfg, logger)
}

// progressLog records the progress reports one caller gets.
type progressLog struct {
	mu      sync.Mutex
	reports []image.Progress
	at      []time.Time
}

func (l *progressLog) record(p image.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, p)
	l.at = append(l.at, time.Now())
}

// check asserts that the reports rise steadily to total over layers, and
// returns how many came while bytes were still on the way.
func (l *progressLog) check(t *testing.T, who string, total int64, layers int) (partial int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reports) == 0 {
		t.Fatalf("%s: no progress reported", who)
	}
	for i, p := range l.reports {
		if p.Total != total || p.Layers != layers {
			t.Fatalf("%s: report %d is %+v, want Total %d over %d layers (sum of the layer sizes)", who, i, p, total, layers)
		}
		if p.Done < 0 || p.Done > p.Total || p.LayersDone > p.Layers {
			t.Fatalf("%s: report %d out of range: %+v", who, i, p)
		}
		if i > 0 && (p.Done < l.reports[i-1].Done || p.LayersDone < l.reports[i-1].LayersDone) {
			t.Fatalf("%s: progress went back: %+v", who, l.reports)
		}
		if p.Done > 0 && p.Done < p.Total {
			partial++
		}
	}
	if last := l.reports[len(l.reports)-1]; last.Done != total || last.LayersDone != layers {
		t.Fatalf("%s: last report %+v, want all %d bytes of %d layers", who, last, total, layers)
	}
	return partial
}

// fetchPath is one way a pull fetches: through the plugin, which sees every
// read, or through containerd's transfer service, whose progress comes a
// mebibyte of a layer at a time. Which one a pull takes follows from its
// activity timeout; a test moves the bound to pick one.
type fetchPath struct {
	name     string
	minStall time.Duration // image.SetMinTransferStall
	logged   string        // what the manager logs when it takes this path
}

var fetchPaths = []fetchPath{
	{"plugin", time.Hour, "fetching through the plugin"},
	{"transfer service", 0, "fetching through containerd's transfer service"},
}

// use makes the test's pulls take p, and returns a manager whose log the
// returned func checks for p.
func (p fetchPath) use(t *testing.T, b *bed, cfg image.Config) (*image.Manager, func()) {
	t.Helper()
	t.Cleanup(image.SetMinTransferStall(p.minStall))
	rec := &logRecorder{out: testbed.TestLog(t)}
	logger := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: rec})
	return image.NewManager(b.cd.Client, b.cd.Namespace, cfg, logger), func() {
		t.Helper()
		if !rec.contains(p.logged) {
			t.Errorf("the pull did not log %q: it did not fetch through the %s", p.logged, p.name)
		}
	}
}

// logRecorder passes a manager's log on to the test and keeps it.
type logRecorder struct {
	out io.Writer // testbed.TestLog
	mu  sync.Mutex
	log strings.Builder
}

func (r *logRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.log.Write(p)
	r.mu.Unlock()
	return r.out.Write(p)
}

func (r *logRecorder) contains(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Contains(r.log.String(), s)
}

func TestEnsureReportsProgress(t *testing.T) {
	for _, tc := range []struct {
		path fetchPath
		// The link's rate for an image of total bytes, the activity
		// timeout, the least time the pull takes at that rate and the
		// reports wanted while bytes are on the way.
		rate       func(total int64) int
		stall      time.Duration
		minTook    time.Duration
		minPartial int
	}{
		// About 1.5s of transfer: longer than the activity timeout, which
		// a slow but steady pull must not trip.
		{fetchPaths[0], func(total int64) int { return int(total) * 2 / 3 }, 500 * time.Millisecond, time.Second, 3},
		// The transfer service reports a layer's bytes a mebibyte at a
		// time: about 3s for three layers at about 1 MB/s each.
		{fetchPaths[1], func(total int64) int { return int(total) / 3 }, 2 * time.Second, 5 * time.Second / 2, 2},
	} {
		t.Run(tc.path.name, func(t *testing.T) {
			b := newBed(t)
			img, ref := b.fillerImage(t, "test/filler", 3<<20, 2<<20, 4<<20)
			total := layerBytes(img)
			b.proxy.set(func(p *registryProxy) { p.rate = tc.rate(total) })
			const interval = 100 * time.Millisecond
			mgr, checkPath := tc.path.use(t, b, image.Config{ProgressInterval: interval, ActivityTimeout: tc.stall})

			var log progressLog
			start := time.Now()
			if _, err := mgr.Ensure(b.ctx, image.Request{Ref: ref, Progress: log.record}); err != nil {
				t.Fatalf("pull: %v", err)
			}
			took := time.Since(start)
			t.Logf("pull took %s, %d reports: %+v", took, len(log.reports), log.reports)
			checkPath()
			if took < tc.minTook {
				t.Fatalf("the throttled pull took only %s", took)
			}
			if partial := log.check(t, "caller", total, 3); partial < tc.minPartial {
				t.Errorf("only %d reports while the pull was under way: bytes are not counted as they arrive", partial)
			}
			// Throttled: no two reports closer than the interval, but the
			// last (all layers in) which may come at any time.
			for i := 1; i < len(log.at)-1; i++ {
				if gap := log.at[i].Sub(log.at[i-1]); gap < interval*3/4 {
					t.Errorf("reports %d and %d only %s apart", i-1, i, gap)
				}
			}
			b.requireNoLeases(t)
			requireNoIngests(t, b.cd)

			// A local image is not pulled: no progress.
			var again progressLog
			if _, err := mgr.Ensure(b.ctx, image.Request{Ref: ref, Progress: again.record}); err != nil {
				t.Fatal(err)
			}
			if len(again.reports) != 0 {
				t.Errorf("progress for a local image: %+v", again.reports)
			}
		})
	}
}

func TestEnsureSharedPullReportsToEveryCaller(t *testing.T) {
	b := newBed(t)
	img, ref := b.fillerImage(t, "test/shared", 2<<20, 3<<20)
	total := layerBytes(img)
	hold := make(chan struct{})
	b.proxy.set(func(p *registryProxy) { p.holdBlob, p.rate = hold, int(total) })
	mgr := b.manager(t, image.Config{ProgressInterval: 50 * time.Millisecond})

	var logs [2]progressLog
	errs := make(chan error, 2)
	ensure := func(i int) {
		_, err := mgr.Ensure(b.ctx, image.Request{Ref: ref, Progress: logs[i].record})
		errs <- err
	}
	go ensure(0)
	waitUntil(t, "the pull reaches the blobs", func() bool { return b.proxy.countPrefix("/v2/test/shared/blobs/") > 0 })
	go ensure(1)
	time.Sleep(300 * time.Millisecond) // the second caller joins the held pull
	close(hold)
	for range logs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range logs {
		if partial := logs[i].check(t, []string{"first caller", "joined caller"}[i], total, 2); partial == 0 {
			t.Errorf("caller %d saw no report while the pull was under way: %+v", i, logs[i].reports)
		}
	}
	if n := b.proxy.count("HEAD", tagPath("test/shared", "1")) + b.proxy.count("GET", tagPath("test/shared", "1")); n != 1 {
		t.Errorf("tag resolved %d times, want 1 pull", n)
	}
	for d := range img.Blobs {
		if n := b.proxy.count("GET", "/v2/test/shared/blobs/"+d.String()); n != 1 {
			t.Errorf("blob %s fetched %d times, want 1", d, n)
		}
	}
	b.requireNoLeases(t)
	requireNoIngests(t, b.cd)
}

func TestEnsureStalledPullIsCancelled(t *testing.T) {
	for _, path := range fetchPaths {
		t.Run(path.name, func(t *testing.T) {
			b := newBed(t)
			img, ref := b.fillerImage(t, "test/stall", 1<<20, 4<<20)
			big := img.Manifest.Layers[1]
			b.proxy.set(func(p *registryProxy) {
				p.stallBlob, p.stallAfter = "/v2/test/stall/blobs/"+big.Digest.String(), 1<<20
			})
			// The plugin default (2m) stays; the task asks for 1s.
			mgr, checkPath := path.use(t, b, image.Config{PullTimeout: time.Minute, ProgressInterval: 50 * time.Millisecond})

			var log progressLog
			start := time.Now()
			_, err := mgr.Ensure(b.ctx, image.Request{Ref: ref, ActivityTimeout: time.Second, Progress: log.record})
			took := time.Since(start)
			if err == nil {
				t.Fatal("a stalled pull succeeded")
			}
			t.Logf("stalled after %s: %v", took, err)
			checkPath()
			if took < time.Second || took > 15*time.Second {
				t.Errorf("stall detected after %s, want a little over the 1s activity timeout", took)
			}
			if !errors.Is(err, image.ErrPullStalled) || !image.IsRecoverable(err) || !strings.Contains(err.Error(), "stalled") {
				t.Errorf("stalled pull: err %v, recoverable %v; want a recoverable stall", err, image.IsRecoverable(err))
			}
			if !strings.Contains(err.Error(), `failed to pull image "`+ref+`"`) {
				t.Errorf("error %q does not name the image", err)
			}
			log.mu.Lock()
			if n := len(log.reports); n == 0 || log.reports[n-1].Done < 1<<20 {
				t.Errorf("progress before the stall: %+v, want the bytes that came", log.reports)
			}
			log.mu.Unlock()
			if n := b.proxy.count("GET", "/v2/test/stall/blobs/"+big.Digest.String()); n != 1 {
				t.Errorf("stalled blob requested %d times", n)
			}
			// Nothing of the cancelled pull is left: no lease, no partial ingest,
			// no image.
			b.requireNoLeases(t)
			requireNoIngests(t, b.cd)
			b.requireNoImage(t, ref)

			// The registry recovers: the same pull goes through.
			b.proxy.set(func(p *registryProxy) { p.stallBlob = "" })
			got, err := imageOf(mgr.Ensure(b.ctx, image.Request{Ref: ref, ActivityTimeout: time.Second}))
			if err != nil {
				t.Fatalf("pull after the stall: %v", err)
			}
			if got.Target().Digest != img.Digest() {
				t.Fatalf("got %s, pushed %s", got.Target().Digest, img.Digest())
			}
			b.requireNoLeases(t)
			requireNoIngests(t, b.cd)
		})
	}
}
