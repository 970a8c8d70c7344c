//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// registries starts a private registry (TLS from its own CA, basic auth)
// holding team/app:1, makes reg docker.io's mirror with busybox as
// library/busybox:mirror, and returns the private registry and the hosts
// directory (registry_config_dir) that says both.
func registries(t *testing.T, ctx context.Context, img *testbed.Image, reg *testbed.Registry) (*testbed.Registry, string) {
	t.Helper()
	private := testbed.StartRegistry(t, testbed.RegistryOptions{TLS: true, User: "team", Password: "e2e-Secret-pw"})
	_, err := img.PushTo(ctx, private.URL(), private.HTTPClient(), private.User, private.Password, "team/app:1")
	must.NoError(t, err)
	_, err = img.Push(ctx, reg.Host, "library/busybox:mirror")
	must.NoError(t, err)

	hosts, err := private.WriteHostsDir(t.TempDir())
	must.NoError(t, err)
	// an air-gapped node: docker.io resolves through the local mirror only
	dir := filepath.Join(hosts, "docker.io")
	must.NoError(t, os.MkdirAll(dir, 0o755))
	toml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+reg.Host, "http://"+reg.Host)
	must.NoError(t, os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644))
	return private, hosts
}

func testPrivateRegistry(t *testing.T, e *env) {
	image := e.private.Host + "/team/app:1"
	e.run(t, "private-registry.nomad.hcl", "image="+image, "username="+e.private.User, "password="+e.private.Password)
	a := e.alloc(t, "private-registry", "complete")
	must.StrContains(t, e.cli(t, "alloc", "logs", a.ID), "pulled with credentials")
	e.cli(t, "job", "stop", "-purge", "private-registry")

	const wrong = "Wrong-pw-4711"
	e.run(t, "private-registry.nomad.hcl", "image="+image, "username="+e.private.User, "password="+wrong)
	a = e.alloc(t, "private-registry", "failed")
	status := e.cli(t, "alloc", "status", a.ID)
	must.StrContains(t, status, "failed to get image")
	must.StrNotContains(t, status, wrong)
	e.cli(t, "job", "stop", "-purge", "private-registry")
}

func testMirror(t *testing.T, e *env) {
	e.run(t, "mirror.nomad.hcl", "image=docker.io/library/busybox:mirror")
	a := e.alloc(t, "mirror", "complete")
	must.StrContains(t, e.cli(t, "alloc", "logs", a.ID), "pulled through the mirror")
	// the tag exists only on the local mirror, and the image is its content
	ctx := namespaces.WithNamespace(context.Background(), e.cd.Namespace)
	rec, err := e.cd.Client.ImageService().Get(ctx, "docker.io/library/busybox:mirror")
	must.NoError(t, err)
	must.Eq(t, e.digest, rec.Target.Digest)
	e.cli(t, "job", "stop", "-purge", "mirror")
}
