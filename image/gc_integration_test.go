//go:build integration

package image

import (
	"context"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/image-spec/identity"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestGCContainerd runs the collector against a real containerd: of images
// released together, the unused one goes (with its own content and
// snapshots), the one a container uses and the pinned ones stay, and so
// does the one a task started with again; the used one goes once its
// container is gone and it is released again.
func TestGCContainerd(t *testing.T) {
	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	ctx, cancel := context.WithTimeout(cd.Context(), 2*time.Minute)
	defer cancel()
	const (
		unused    = "docker.io/library/gc-unused:1"
		used      = "docker.io/library/busybox:used"
		spare     = "docker.io/library/busybox:spare"
		pinnedCRI = "docker.io/library/busybox:pinned-cri"
		pinnedOwn = "docker.io/library/busybox:pinned"
		delay     = 200 * time.Millisecond
	)

	// the unused image has a layer of its own, to see its content go
	busybox, err := testbed.BuildBusybox()
	if err != nil {
		t.Fatal(err)
	}
	filler, err := testbed.FillerLayer("gc", 64<<10, 7)
	if err != nil {
		t.Fatal(err)
	}
	own, err := busybox.Derive(nil, filler)
	if err != nil {
		t.Fatal(err)
	}
	unusedImg, err := testbed.ImportImage(ctx, cd.Client, own, unused, "")
	if err != nil {
		t.Fatal(err)
	}
	diffIDs, err := unusedImg.RootFS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chainID := identity.ChainID(diffIDs).String()
	fillerBlob := own.Manifest.Layers[len(own.Manifest.Layers)-1].Digest

	usedImg := testbed.ImportBusybox(t, cd, used)
	for _, ref := range []string{spare, pinnedCRI, pinnedOwn} {
		testbed.ImportBusybox(t, cd, ref)
	}
	pin(ctx, t, cd, pinnedCRI, PinnedLabel, "pinned")
	pin(ctx, t, cd, pinnedOwn, DriverPinnedLabel, "true")

	ctr, err := cd.Client.NewContainer(ctx, "gc-user",
		client.WithImage(usedImg), client.WithNewSnapshot("gc-user", usedImg), client.WithNewSpec())
	if err != nil {
		t.Fatal(err)
	}
	ctrGone := false
	t.Cleanup(func() {
		if !ctrGone {
			_ = ctr.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup)
		}
	})

	log := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: log, JSONFormat: true})
	g := NewGC(cd.Client, cd.Namespace, GCConfig{Enabled: true, Delay: delay}, logger)
	t.Cleanup(g.Stop)
	for _, ref := range []string{unused, used, spare, pinnedCRI, pinnedOwn} {
		g.Release(ref)
	}
	g.Use(spare)
	requireImage(ctx, t, cd, unused, true) // not before the delay

	waitLog(t, log, "removed unused image", "image", unused, "digest", own.Digest().String())
	waitLog(t, log, "image kept", "image", used, "reason", "in use")
	waitLog(t, log, "image kept", "image", pinnedCRI, "reason", "pinned")
	waitLog(t, log, "image kept", "image", pinnedOwn, "reason", "pinned")
	// the removal was synchronous: content and snapshots went with it
	requireImage(ctx, t, cd, unused, false)
	if _, err := cd.Client.ContentStore().Info(ctx, fillerBlob); !errdefs.IsNotFound(err) {
		t.Errorf("layer %s of the removed image still in the content store (err %v)", fillerBlob, err)
	}
	if _, err := cd.Client.SnapshotService("overlayfs").Stat(ctx, chainID); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot %s of the removed image still there (err %v)", chainID, err)
	}

	time.Sleep(3 * delay) // time enough for spare's cancelled removal
	for _, ref := range []string{used, spare, pinnedCRI, pinnedOwn} {
		requireImage(ctx, t, cd, ref, true)
	}
	if log.has("removed unused image", "image", spare) || log.has("image kept", "image", spare) {
		t.Errorf("%s checked after Use:\n%s", spare, log)
	}

	// without its container, the used image goes at its next release
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		t.Fatal(err)
	}
	ctrGone = true
	g.Release(used)
	waitLog(t, log, "removed unused image", "image", used)
	requireImage(ctx, t, cd, used, false)
	requireImage(ctx, t, cd, spare, true) // same content, other name
}

// pin labels image ref with key=value.
func pin(ctx context.Context, t *testing.T, cd *testbed.Containerd, ref, key, value string) {
	t.Helper()
	img := images.Image{Name: ref, Labels: map[string]string{key: value}}
	if _, err := cd.Client.ImageService().Update(ctx, img, "labels."+key); err != nil {
		t.Fatalf("label %s: %v", ref, err)
	}
}

func requireImage(ctx context.Context, t *testing.T, cd *testbed.Containerd, ref string, present bool) {
	t.Helper()
	_, err := cd.Client.ImageService().Get(ctx, ref)
	switch {
	case present && err != nil:
		t.Fatalf("image %s: %v", ref, err)
	case !present && !errdefs.IsNotFound(err):
		t.Fatalf("image %s still there (err %v)", ref, err)
	}
}

// waitLog waits for a log line with message msg and the fields kv.
func waitLog(t *testing.T, log *syncBuffer, msg string, kv ...string) {
	t.Helper()
	if !testbed.Poll(10*time.Second, 20*time.Millisecond, func() bool { return log.has(msg, kv...) }) {
		t.Fatalf("no %q line with %q in the log:\n%s", msg, kv, log)
	}
}
