//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// testWarmImages runs the warming sysbatch job on the agent: it completes
// without a container, the image is in containerd, and a job started on it
// afterwards asks the registry (the mirror) nothing.
func testWarmImages(t *testing.T, e *env) {
	img, err := testbed.BusyboxWith(nil, testbed.File("etc/warmed", 0o644, []byte("warmed\n")))
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dgst, err := img.Push(ctx, e.registry, "library/busybox:warm") // docker.io's mirror
	must.NoError(t, err)
	const ref = "docker.io/library/busybox:warm"

	before := e.mirror.manifests.Load()
	e.runWith(t, "warm-images.nomad.hcl", `images=["`+ref+`"]`)
	a := e.alloc(t, "warm-images", "complete")
	must.Eq(t, 0, exitCode(t, a))
	must.Greater(t, before, e.mirror.manifests.Load(), must.Sprint("the warming pull did not reach the mirror"))
	must.StrContains(t, e.cli(t, "alloc", "status", a.ID), "(pull_only): no container started")
	cctx := namespaces.WithNamespace(context.Background(), e.cd.Namespace)
	rec, err := e.cd.Client.ImageService().Get(cctx, ref)
	must.NoError(t, err)
	must.Eq(t, dgst, rec.Target.Digest)
	_, err = e.cd.Client.LoadContainer(cctx, "warm-0-"+a.ID)
	must.Error(t, err)
	e.stopJob(t, "warm-images")

	// the rollout: its start finds the image on the node
	warmed := e.mirror.manifests.Load()
	e.cli(t, "job", "run", "-detach", "-var", "image="+ref, filepath.Join(testbed.RepoRoot(), "example-jobs", "hello.nomad.hcl"))
	t.Cleanup(func() { e.purge(t, "hello") })
	h := e.alloc(t, "hello", "complete")
	must.StrContains(t, e.cli(t, "alloc", "logs", h.ID), "Hello")
	must.Eq(t, warmed, e.mirror.manifests.Load(), must.Sprint("a start of the warmed image asked the registry"))
	e.stopJob(t, "hello")
}
