//go:build bench

package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// ctrNamespace is where the baseline's `ctr pull` goes.
const ctrNamespace = "bench-ctr"

// coldImage is the pull figure's image: busybox and two filler layers of
// incompressible data, about 60 MB in three layers, in a local registry.
type coldImage struct {
	ref    string
	layers []digest.Digest
	bytes  int64
}

func (b *bed) pushColdImage() *coldImage {
	b.t.Helper()
	reg := testbed.StartRegistry(b.t)
	// busybox with a file of its own, so that no layer is the started
	// image's
	entries, err := testbed.BusyboxEntries()
	must.NoError(b.t, err)
	base, err := testbed.NewLayer(append(entries, testbed.File("etc/bench-cold", 0o644, []byte("cold\n")))...)
	must.NoError(b.t, err)
	a, err := testbed.FillerLayer("a", 28<<20, 1)
	must.NoError(b.t, err)
	c, err := testbed.FillerLayer("b", 28<<20, 2)
	must.NoError(b.t, err)
	img, err := testbed.BuildImage(ocispec.ImageConfig{Env: []string{"PATH=" + testbed.DefaultPath}, Cmd: []string{"sh"}}, base, a, c)
	must.NoError(b.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err = img.Push(ctx, reg.Host, "bench/cold:1")
	must.NoError(b.t, err)
	ci := &coldImage{ref: reg.Host + "/bench/cold:1"}
	for _, l := range img.Manifest.Layers {
		ci.layers = append(ci.layers, l.Digest)
		ci.bytes += l.Size
	}
	must.Eq(b.t, 3, len(ci.layers))
	return ci
}

// figureColdPull: a pull of the image into an empty store, through
// StartTask (until the driver reports the image present) and with
// `ctr pull`; after each the image is removed and containerd's GC collects
// its content and snapshots. Dirty pages are written back before each run
// (sync, not timed), so that no run pays for the writes of the one before.
func (b *bed) figureColdPull(runs int) []Row {
	ci := b.pushColdImage()
	ctr, err := testbed.LookBin("ctr")
	must.NoError(b.t, err)
	drv := func() float64 {
		b.assertCold(ci)
		syscall.Sync()
		tk := b.newTask("", "cold", sleeper(ci.ref))
		began := time.Now()
		_, _, err := b.h.StartTask(tk.cfg)
		must.NoError(b.t, err)
		ev, err := b.events.await(tk.cfg.ID, "Using image", time.Minute)
		must.NoError(b.t, err)
		b.destroyDriver(tk)
		b.removeImage(b.cd.Namespace, ci.ref)
		return ms(ev.Timestamp.Sub(began))
	}
	ctrPull := func(extra ...string) float64 {
		b.assertCold(ci)
		syscall.Sync()
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		args := append([]string{"--address", b.cd.Address, "--namespace", ctrNamespace, "images", "pull", "--plain-http"}, extra...)
		cmd := exec.CommandContext(ctx, ctr, append(args, ci.ref)...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		began := time.Now()
		err := cmd.Run()
		took := time.Since(began)
		must.NoError(b.t, err, must.Sprintf("ctr pull: %s", stderr.String()))
		b.removeImage(ctrNamespace, ci.ref)
		return ms(took)
	}
	s := rotate(runs, 1, drv, func() float64 { return ctrPull() }, func() float64 { return ctrPull("--local") })
	name := fmt.Sprintf("cold pull, %d MB in 3 layers", ci.bytes/1e6)
	transfer, local := Summarize(s[1]), Summarize(s[2])
	return []Row{
		{Name: name, Unit: "ms", Driver: Summarize(s[0]), Baseline: &transfer, BaselineName: "ctr pull",
			Target: Target{TargetRatio, 1.05}, Note: "the driver and ctr pull fetch inside containerd (transfer service); ctr pull --local fetches through its client"},
		{Name: name + ", client-side", Unit: "ms", Driver: Summarize(s[0]), Baseline: &local, BaselineName: "ctr pull --local"},
	}
}

// removeImage deletes ref from namespace ns and waits for containerd's GC.
func (b *bed) removeImage(ns, ref string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), callTimeout)
	defer cancel()
	err := b.cd.Client.ImageService().Delete(ctx, ref, images.SynchronousDelete())
	must.NoError(b.t, err)
}

// assertCold fails unless no layer of ci is in either namespace's store.
func (b *bed) assertCold(ci *coldImage) {
	b.t.Helper()
	for _, ns := range []string{b.cd.Namespace, ctrNamespace} {
		ctx := namespaces.WithNamespace(context.Background(), ns)
		for _, l := range ci.layers {
			_, err := b.cd.Client.ContentStore().Info(ctx, l)
			must.True(b.t, errdefs.IsNotFound(err), must.Sprintf("layer %s still in namespace %s (%v)", l, ns, err))
		}
	}
}
