//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// mirrorTag is the default tag of example-jobs/mirror.nomad.hcl: the job
// runs as written.
const mirrorTag = "1.36"

// mirror is the plain registry acting as docker.io's mirror, seen through a
// reverse proxy on 127.0.0.1 that counts the manifest requests for
// library/busybox, so that a test knows a pull went through it.
type mirror struct {
	host      string // 127.0.0.1:port of the proxy
	manifests atomic.Int64
}

func startMirror(t *testing.T, reg *testbed.Registry) *mirror {
	t.Helper()
	target, err := url.Parse(reg.URL())
	must.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = reg.HTTPClient().Transport
	m := &mirror{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/library/busybox/manifests/") {
			m.manifests.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.host = strings.TrimPrefix(srv.URL, "http://")
	return m
}

// registries starts a private registry (TLS from its own CA, basic auth)
// holding team/app:1, makes reg docker.io's mirror with busybox as
// library/busybox:<mirrorTag>, and returns the private registry, the mirror
// and the one hosts directory (registry_config_dir) that says both.
func registries(t *testing.T, ctx context.Context, img *testbed.Image, reg *testbed.Registry) (*testbed.Registry, *mirror, string) {
	t.Helper()
	private := testbed.StartRegistry(t, testbed.RegistryOptions{TLS: true, User: "team", Password: "e2e-Secret-pw"})
	_, err := img.PushTo(ctx, private.URL(), private.HTTPClient(), private.User, private.Password, "team/app:1")
	must.NoError(t, err)
	_, err = img.Push(ctx, reg.Host, "library/busybox:"+mirrorTag)
	must.NoError(t, err)
	m := startMirror(t, reg)

	hosts, err := private.WriteHostsDir(t.TempDir())
	must.NoError(t, err)
	// an air-gapped node: docker.io resolves through the local mirror only
	// (the server is the mirror too, so a failing mirror never sends the
	// test to Docker Hub)
	dir := filepath.Join(hosts, "docker.io")
	must.NoError(t, os.MkdirAll(dir, 0o755))
	toml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n",
		"http://"+m.host, "http://"+m.host)
	must.NoError(t, os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644))
	return private, m, hosts
}

// runWith submits an example job with vars alone (not the test image).
func (e *env) runWith(t *testing.T, job string, vars ...string) {
	t.Helper()
	args := []string{"job", "run", "-detach"}
	for _, v := range vars {
		args = append(args, "-var", v)
	}
	e.cli(t, append(args, filepath.Join(testbed.RepoRoot(), "example-jobs", job))...)
	t.Cleanup(func() { e.purge(t, strings.TrimSuffix(job, ".nomad.hcl")) })
}

func testPrivateRegistry(t *testing.T, e *env) {
	image := e.private.Host + "/team/app:1"
	e.runWith(t, "private-registry.nomad.hcl", "image="+image, "username="+e.private.User, "password="+e.private.Password)
	a := e.alloc(t, "private-registry", "complete")
	must.StrContains(t, e.cli(t, "alloc", "logs", a.ID), "pulled with credentials")
	must.StrNotContains(t, e.cli(t, "alloc", "status", a.ID), e.private.Password)
	e.stopJob(t, "private-registry")

	const wrong = "Wrong-pw-4711"
	e.runWith(t, "private-registry.nomad.hcl", "image="+image, "username="+e.private.User, "password="+wrong)
	a = e.alloc(t, "private-registry", "failed")
	status := e.cli(t, "alloc", "status", a.ID)
	must.StrContains(t, status, "failed to get image")
	must.StrContains(t, status, image)
	must.StrNotContains(t, status, wrong)
	must.StrNotContains(t, e.nomad.LogTail(1<<20), wrong)
	ctx := namespaces.WithNamespace(context.Background(), e.cd.Namespace)
	_, err := e.cd.Client.LoadContainer(ctx, "app-"+a.ID)
	must.Error(t, err)
	e.stopJob(t, "private-registry")
}

func testMirror(t *testing.T, e *env) {
	// twice: the second start finds the image in containerd, and force_pull
	// still resolves the tag through the mirror
	for run := 1; run <= 2; run++ {
		before := e.mirror.manifests.Load()
		e.runWith(t, "mirror.nomad.hcl")
		a := e.alloc(t, "mirror", "complete")
		must.StrContains(t, e.cli(t, "alloc", "logs", a.ID), "pulled through the mirror")
		must.Greater(t, before, e.mirror.manifests.Load(), must.Sprintf("run %d: no manifest request reached the mirror", run))
		e.stopJob(t, "mirror")
	}
	// the image is the mirror's content (Docker Hub's busybox has another digest)
	ctx := namespaces.WithNamespace(context.Background(), e.cd.Namespace)
	rec, err := e.cd.Client.ImageService().Get(ctx, "docker.io/library/busybox:"+mirrorTag)
	must.NoError(t, err)
	must.Eq(t, e.digest, rec.Target.Digest)
}
