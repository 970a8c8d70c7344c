//go:build integration

package driver

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestStartDuringPull checks that no lock of the driver spans a pull: while
// one task's pull hangs at the registry, a task whose image is present
// starts, runs and is destroyed, and the hanging start completes once the
// registry answers.
func TestStartDuringPull(t *testing.T) {
	b := newCheckedBed(t)
	reg := testbed.StartRegistry(t)
	// a layer of its own, so that the pull has something to fetch
	layer, err := testbed.NewLayer(testbed.File("etc/slow", 0o644, []byte("slow\n")))
	must.NoError(t, err)
	pushBusyboxWith(t, reg, layer, "slow/busybox:1")
	held, release := holdingProxy(t, reg.Host)
	h := b.harness(t, "")

	slow := newTask(t, rawTaskConfig{Image: held.host + "/slow/busybox:1", Command: "sleep", Args: []string{"60"}})
	t.Cleanup(h.MkAllocDir(slow, true))
	slowDone := make(chan error, 1)
	go func() {
		_, _, err := h.StartTask(slow)
		slowDone <- err
	}()
	impl := h.Impl()
	t.Cleanup(func() { _ = impl.DestroyTask(slow.ID, true) })
	select {
	case <-held.blobAsked:
	case err := <-slowDone:
		t.Fatalf("the start ended before its pull reached the registry: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the pull never asked the registry for a layer")
	}

	fast := newTask(t, sh("echo fast"))
	t.Cleanup(h.MkAllocDir(fast, true))
	must.NoError(t, startBefore(t, h, fast, time.Minute, "a start whose image is present waited for another task's pull"))
	must.Eq(t, 0, wait(t, h, fast.ID, 30*time.Second).ExitCode)
	must.NoError(t, h.DestroyTask(fast.ID, false))
	select {
	case err := <-slowDone:
		t.Fatalf("the held start ended while its pull was held: %v", err)
	default:
	}

	release()
	select {
	case err := <-slowDone:
		must.NoError(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the start did not end after the registry answered")
	}
	must.NoError(t, h.StopTask(slow.ID, time.Second, "SIGKILL"))
}

// heldRegistry is a proxy in front of a registry that holds every layer
// request until released.
type heldRegistry struct {
	host      string
	blobAsked chan struct{} // closed at the first layer request
}

func holdingProxy(t *testing.T, registryHost string) (*heldRegistry, func()) {
	t.Helper()
	target, err := url.Parse("http://" + registryHost)
	must.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{Proxy: nil}
	hr := &heldRegistry{blobAsked: make(chan struct{})}
	gate := make(chan struct{})
	var asked, released sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			asked.Do(func() { close(hr.blobAsked) })
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	release := func() { released.Do(func() { close(gate) }) }
	t.Cleanup(srv.Close)
	t.Cleanup(release) // runs first: nothing is held when the server closes
	hr.host = strings.TrimPrefix(srv.URL, "http://")
	return hr, release
}
