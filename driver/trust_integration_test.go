//go:build integration

package driver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestVerifiedImageStartsWithoutRegistry checks that under an enforce rule
// a start of an image the driver has verified asks the registry nothing:
// with the registry stopped, the image starts again, still reported as
// verified, also after a SetConfig with the same rules; after a SetConfig
// that changes the rules it is verified again and, without the registry,
// refused; a new driver verifies again too.
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

	err = refused(t, &imageBed{bed: b}, b.harness(t, trust), raw)
	must.StrContains(t, err.Error(), "failed signature verification")

	changed := strings.Replace(trust, "trust {\n", "trust {\n default_policy = \"warn\"\n", 1)
	b.setConfig(t, h, changed)
	err = refused(t, &imageBed{bed: b}, h, raw)
	must.StrContains(t, err.Error(), "failed signature verification")
	must.StrContains(t, err.Error(), "failed to fetch signatures")
}
