//go:build integration

package image_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/errdefs"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestLoadArchive loads an image from an OCI archive written by
// containerd's exporter, under the requested name only.
func TestLoadArchive(t *testing.T) {
	b := newBed(t)
	src := testbed.ImportBusybox(t, b.cd, "docker.io/library/busybox:export-src")
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	is := b.cd.Client.ImageService()
	if err := b.cd.Client.Export(b.cd.Context(), f, archive.WithImage(is, src.Name())); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := is.Delete(b.cd.Context(), src.Name()); err != nil {
		t.Fatal(err)
	}

	const ref = "registry.example.invalid/team/loaded:1"
	img, err := imageOf(b.mgr.Ensure(b.ctx, image.Request{Ref: ref, Archive: tarPath}))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if img.Name() != ref {
		t.Fatalf("loaded as %q, want %q", img.Name(), ref)
	}
	ok, err := img.IsUnpacked(b.cd.Context(), "overlayfs")
	if err != nil || !ok {
		t.Fatalf("loaded image not unpacked: %v %v", ok, err)
	}
	all, err := is.List(b.cd.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range all {
		if i.Name == src.Name() {
			t.Fatalf("the archive's own name %q was recreated", i.Name)
		}
	}

	// a second start finds it locally; a missing archive is a clear error
	if _, err := b.mgr.Ensure(b.ctx, image.Request{Ref: ref, Archive: "/nonexistent.tar"}); err != nil {
		t.Fatalf("local image not used: %v", err)
	}
	_, err = b.mgr.Ensure(b.ctx, image.Request{Ref: "registry.example.invalid/team/other:1", Archive: "/nonexistent.tar"})
	if err == nil || image.IsRecoverable(err) {
		t.Fatalf("missing archive: err = %v, want a non-recoverable error", err)
	}
	if _, err := is.Get(b.cd.Context(), "registry.example.invalid/team/other:1"); !errdefs.IsNotFound(err) {
		t.Fatalf("failed load left an image: %v", err)
	}
	if err := is.Delete(b.cd.Context(), ref); err != nil {
		t.Fatal(err)
	}
}

// TestPlatform pulls for this machine's platform when asked by name, and
// refuses a platform the image does not have.
func TestPlatform(t *testing.T) {
	b := newBed(t)
	if _, err := b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref, Platform: "linux/" + runtime.GOARCH}); err != nil {
		t.Fatalf("pull for linux/%s: %v", runtime.GOARCH, err)
	}
	_, err := b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref, Platform: "linux/s390x", ForcePull: true})
	if err == nil {
		t.Fatal("pull for linux/s390x of a single-platform image succeeded")
	}
	t.Log(err)
	_, err = b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref, Platform: "linux//"})
	if !errors.Is(err, image.ErrInvalidPlatform) {
		t.Fatalf("bad platform: err = %v, want ErrInvalidPlatform", err)
	}
	if err := b.cd.Client.ImageService().Delete(b.cd.Context(), b.ref); err != nil && !errdefs.IsNotFound(err) {
		t.Fatal(err)
	}
}
