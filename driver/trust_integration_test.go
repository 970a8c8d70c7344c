//go:build integration

package driver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// trustBed is a checked bed and a registry holding the busybox image as
// repoTag, and the image and its digest.
func trustBed(t *testing.T, ctx context.Context, repoTag string) (*bed, *testbed.Registry, *testbed.Image, digest.Digest) {
	t.Helper()
	b := newCheckedBed(t)
	reg := testbed.StartRegistry(t)
	img, err := testbed.BuildBusybox()
	must.NoError(t, err)
	dgst, err := reg.Push(ctx, img, repoTag)
	must.NoError(t, err)
	return b, reg, img, dgst
}

// TestVerifiedImageStartsWithoutRegistry checks that under an enforce rule
// a start of an image the driver has verified asks the registry nothing:
// with the registry stopped, the image starts again, still reported as
// verified, also after a SetConfig with the same rules; after a SetConfig
// that changes the rules it is verified again and, without the registry,
// refused; a new driver verifies again too.
func TestVerifiedImageStartsWithoutRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, reg, _, dgst := trustBed(t, ctx, "signed/busybox:1")
	cosign := testbed.NewCosign(t)
	key := cosign.GenerateKeyPair(t, "trusted")
	must.NoError(t, cosign.Sign(ctx, key.Private, reg.Host+"/signed/busybox@"+dgst.String(), testbed.SignOptionsFor(reg)))
	cosign.CheckOffline(t)
	trust := fmt.Sprintf("trust {\n rule {\n  prefix = %q\n  public_keys = [%q]\n  policy = \"enforce\"\n }\n}\n", reg.Host+"/signed/", key.Public)
	raw := rawTaskConfig{Image: reg.Host + "/signed/busybox:1"}

	h := b.harness(t, trust)
	first, ev := runImage(t, h, raw)
	eventually(t, "verified event", func() bool { return ev.has("Image signature verified") })

	must.NoError(t, reg.Stop())
	task, ev := runImage(t, h, raw)
	eventually(t, "verified event", func() bool { return ev.has("Image signature verified") })

	// a SetConfig closes the containerd connection the tasks' handles use:
	// they go first
	must.NoError(t, h.DestroyTask(first.ID, true))
	must.NoError(t, h.DestroyTask(task.ID, true))
	b.setConfig(t, h, trust)
	task, ev = runImage(t, h, raw)
	eventually(t, "verified event after the same rules", func() bool { return ev.has("Image signature verified") })
	must.NoError(t, h.DestroyTask(task.ID, true))

	err := refused(t, &imageBed{bed: b}, b.harness(t, trust), raw)
	must.StrContains(t, err.Error(), "failed signature verification")

	changed := strings.Replace(trust, "trust {\n", "trust {\n default_policy = \"warn\"\n", 1)
	b.setConfig(t, h, changed)
	err = refused(t, &imageBed{bed: b}, h, raw)
	must.StrContains(t, err.Error(), "failed signature verification")
	must.StrContains(t, err.Error(), "failed to fetch signatures")
}

// TestKeylessImage checks a keyless rule through the driver: an image
// signed in a virtual Sigstore by the release workflow starts under a rule
// for that identity, with an event naming it; a rule for another workflow
// refuses it before any container exists.
func TestKeylessImage(t *testing.T) {
	const issuer = "https://token.actions.githubusercontent.com"
	const release = "https://github.com/example/payments/.github/workflows/release.yml@refs/tags/v1.0.0"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, reg, img, dgst := trustBed(t, ctx, "keyless/busybox:1")
	vs := testbed.NewVirtualSigstore(t)
	must.NoError(t, testbed.AttachBundle(ctx, reg.Host, "keyless/busybox", img.Descriptor(), vs.SignImage(t, issuer, release, dgst, testbed.BundleOptions{})))
	rule := func(subjectRegexp string) string {
		return fmt.Sprintf("trust {\n rule {\n  prefix = %q\n  trusted_root = %q\n  identity {\n   issuer = %q\n   subject_regexp = %q\n  }\n }\n}\n",
			reg.Host+"/keyless/", vs.RootPath, issuer, subjectRegexp)
	}
	raw := rawTaskConfig{Image: reg.Host + "/keyless/busybox:1"}

	_, ev := runImage(t, b.harness(t, rule(`^https://github\.com/example/payments/\.github/workflows/release\.yml@refs/tags/v`)), raw)
	eventually(t, "verified event", func() bool { return ev.has("Image signature verified") && ev.has(release) })

	err := refused(t, &imageBed{bed: b}, b.harness(t, rule(`^https://github\.com/example/payments/\.github/workflows/deploy\.yml@`)), raw)
	must.StrContains(t, err.Error(), "not signed by any trusted identity")
	must.StrContains(t, err.Error(), dgst.String())
}
