//go:build integration

package driver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// countingProxy is a proxy in front of a registry that counts the requests
// it passes on.
func countingProxy(t *testing.T, registryHost string) (host string, requests *atomic.Int64) {
	t.Helper()
	target, err := url.Parse("http://" + registryHost)
	must.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{Proxy: nil}
	requests = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), requests
}

// A pull_only task pulls its image and exits 0 with no container, snapshot
// or lease left; the image stays, so that a later start of it asks the
// registry nothing. A pull_only task refused by trust fails its start.
func TestPullOnlyWarmsTheImage(t *testing.T) {
	b := newBed(t)
	testbed.LeakCheck(t, b.cd)
	reg := testbed.StartRegistry(t)
	img, err := testbed.BusyboxWith(nil, testbed.File("etc/warm", 0o644, []byte("warm\n")))
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = reg.Push(ctx, img, "warm/busybox:1")
	must.NoError(t, err)
	host, requests := countingProxy(t, reg.Host)
	ref := host + "/warm/busybox:1"
	h := b.harness(t, "")

	warm := newTask(t, rawTaskConfig{Image: ref, PullOnly: true, Command: "false", Ports: []string{"http"}})
	ev := collectEvents(t, h, warm.ID)
	handle := start(t, h, warm)
	must.Eq(t, 0, wait(t, h, warm.ID, 30*time.Second).ExitCode)
	must.Positive(t, requests.Load())
	b.nothingLeft(t, warm)
	cctx := namespaces.WithNamespace(context.Background(), b.cd.Namespace)
	stored, err := b.cd.Client.ImageService().Get(cctx, ref)
	must.NoError(t, err)
	eventually(t, "the pull_only event", func() bool { return ev.has("(pull_only): no container started") })
	ts, err := decodeState(handle)
	must.NoError(t, err)
	must.True(t, ts.PullOnly)
	must.Eq(t, stored.Target.Digest.String(), ts.ImageDigest)

	// a recovered pull_only task (the plugin restarted) reports its exit
	// and is destroyed with nothing to tear down
	h2 := b.harness(t, "")
	must.NoError(t, h2.RecoverTask(handle))
	must.Eq(t, 0, wait(t, h2, warm.ID, 10*time.Second).ExitCode)
	must.NoError(t, h2.StopTask(warm.ID, time.Second, "SIGTERM"))
	must.NoError(t, h2.DestroyTask(warm.ID, false))
	must.NoError(t, h.DestroyTask(warm.ID, false))

	// the image stays: a start of it asks the registry nothing
	before := requests.Load()
	run := newTask(t, rawTaskConfig{Image: ref, Command: "cat", Args: []string{"/etc/warm"}})
	start(t, h, run)
	must.Eq(t, 0, wait(t, h, run.ID, 30*time.Second).ExitCode)
	eventually(t, "the task's output", func() bool { return logs(t, run, "stdout") == "warm\n" })
	must.Eq(t, before, requests.Load())
	must.NoError(t, h.DestroyTask(run.ID, false))

	// trust rules apply: an unsigned image under enforce is refused
	key := testbed.NewCosign(t).GenerateKeyPair(t, "trusted")
	hs := b.harness(t, fmt.Sprintf("trust {\n rule {\n  prefix = %q\n  public_keys = [%q]\n  policy = \"enforce\"\n }\n}\n", host+"/warm/", key.Public))
	refused := newTask(t, rawTaskConfig{Image: ref, PullOnly: true, ForcePull: true})
	t.Cleanup(hs.MkAllocDir(refused, true))
	_, _, err = hs.StartTask(refused)
	must.ErrorContains(t, err, "warm/busybox")
	b.nothingLeft(t, refused)
}
