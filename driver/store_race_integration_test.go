//go:build integration

package driver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestVerifiedPullRacedByNameWriter: under an enforce rule, while the
// driver's verified pull of a signed image is between the signature check
// and reading the name back, another writer (a concurrent load, `ctr images
// tag`) stores an unsigned image under the same name. The start fails,
// naming the verified digest and the other one, and leaves no container,
// snapshot or lease; a start with no race runs the signed image.
func TestVerifiedPullRacedByNameWriter(t *testing.T) {
	b := newCheckedBed(t)
	reg := testbed.StartRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// the signed image, in the registry
	signedImg, err := testbed.BuildBusybox()
	must.NoError(t, err)
	signed, err := reg.Push(ctx, signedImg, "signed/busybox:1")
	must.NoError(t, err)
	cosign := testbed.NewCosign(t)
	key := cosign.GenerateKeyPair(t, "trusted")
	must.NoError(t, cosign.Sign(ctx, key.Private, reg.Host+"/signed/busybox@"+signed.String(), testbed.SignOptionsFor(reg)))
	cosign.CheckOffline(t)
	name := reg.Host + "/signed/busybox:1"

	// the other writer's image: busybox plus /pwned, signed by nobody
	marker, err := testbed.NewLayer(testbed.File("pwned", 0o644, []byte("unsigned\n")))
	must.NoError(t, err)
	otherImg, err := signedImg.Derive(nil, marker)
	must.NoError(t, err)
	cctx := b.cd.Context()
	is := b.cd.Client.ImageService()
	const otherName = "docker.io/library/unsigned:race"
	other, err := testbed.ImportImage(cctx, b.cd.Client, otherImg, otherName, "")
	must.NoError(t, err)
	t.Cleanup(func() { _ = is.Delete(b.cd.Context(), otherName) })
	must.NotEq(t, signed, other.Target().Digest)

	trust := fmt.Sprintf("trust {\n rule {\n  prefix = %q\n  public_keys = [%q]\n  policy = \"enforce\"\n }\n}\n", reg.Host+"/signed/", key.Public)
	h := b.harness(t, trust)
	raw := rawTaskConfig{Image: name, ForcePull: true, Command: "sh", Args: []string{"-c", "test ! -e /pwned && echo signed"}}

	// the race: the name is rewritten after verification, before the check
	raced := newTask(t, raw)
	wrote := make(chan error, 1)
	h.Impl().(*Driver).afterVerify = func(cfg *drivers.TaskConfig) {
		if cfg.ID == raced.ID {
			_, err := is.Update(cctx, images.Image{Name: name, Target: other.Target()}, "target")
			wrote <- err
		}
	}
	t.Cleanup(h.MkAllocDir(raced, true))
	_, _, err = h.StartTask(raced)
	select {
	case werr := <-wrote:
		must.NoError(t, werr)
	default:
		t.Fatal("the name was not rewritten during the start")
	}
	must.Error(t, err, must.Sprint("a start ran while the image store held an unverified image under the verified name"))
	t.Log(err)
	must.StrContains(t, err.Error(), signed.String())
	must.StrContains(t, err.Error(), other.Target().Digest.String())
	b.nothingLeft(t, raced)

	// no race: the signed image is pulled again and runs
	task := newTask(t, raw)
	ev := collectEvents(t, h, task.ID)
	start(t, h, task)
	must.Eq(t, 0, wait(t, h, task.ID, 30*time.Second).ExitCode)
	eventually(t, "output", func() bool { return logs(t, task, "stdout") == "signed\n" })
	eventually(t, "verified event", func() bool { return ev.has("Image signature verified") })
	must.True(t, ev.has("Using image "+name+"@"+signed.String()))
	rec, err := is.Get(cctx, name)
	must.NoError(t, err)
	must.Eq(t, signed, rec.Target.Digest)
}
