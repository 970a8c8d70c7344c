//go:build integration

package driver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestVerifiedImageStartsWithoutRegistry checks that under an enforce rule
// a start of an image the driver has verified asks the registry nothing:
// with the registry stopped, the image starts again, still reported as
// verified; a new plugin config verifies again and, without the registry,
// refuses it.
func TestVerifiedImageStartsWithoutRegistry(t *testing.T) {
	b := newCheckedBed(t)
	reg := testbed.StartRegistry(t)
	img, err := testbed.BuildBusybox()
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dgst, err := reg.Push(ctx, img, "signed/busybox:1")
	must.NoError(t, err)
	cosign := testbed.NewCosign(t)
	key := cosign.GenerateKeyPair(t, "trusted")
	must.NoError(t, cosign.Sign(ctx, key.Private, reg.Host+"/signed/busybox@"+dgst.String(), testbed.SignOptionsFor(reg)))
	cosign.CheckOffline(t)
	trust := fmt.Sprintf("trust {\n rule {\n  prefix = %q\n  public_keys = [%q]\n  policy = \"enforce\"\n }\n}\n", reg.Host+"/signed/", key.Public)
	raw := rawTaskConfig{Image: reg.Host + "/signed/busybox:1"}

	h := b.harness(t, trust)
	_, ev := runImage(t, h, raw)
	eventually(t, "verified event", func() bool { return ev.has("Image signature verified") })

	must.NoError(t, reg.Stop())
	_, ev = runImage(t, h, raw)
	eventually(t, "verified event", func() bool { return ev.has("Image signature verified") })

	err = refused(t, &imageBed{bed: b}, b.harness(t, trust), raw)
	must.StrContains(t, err.Error(), "failed signature verification")
}
