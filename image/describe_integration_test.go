//go:build integration

package image_test

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
)

// TestManagerDescribeReadsConfigOnce checks that a Manager reads an image's
// config once per digest: with the config blob gone from the store, a second
// Describe still answers, from what the first one read.
func TestManagerDescribeReadsConfigOnce(t *testing.T) {
	b := newBed(t)
	img, err := imageOf(b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref}))
	if err != nil {
		t.Fatal(err)
	}
	want, err := image.Describe(b.cd.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	first, err := b.mgr.Describe(b.ctx, img, "")
	if err != nil || first.Digest != want.Digest || first.Ref != want.Ref || first.Config.Cmd[0] != "sh" {
		t.Fatalf("first describe = %+v, %v; expected %+v", first, err, want)
	}

	if err := b.cd.Client.ContentStore().Delete(b.cd.Context(), b.img.Manifest.Config.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := image.Describe(b.cd.Context(), img); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a describe reading the store: %v; expected the config not found", err)
	}
	second, err := b.mgr.Describe(b.ctx, img, "")
	if err != nil || second.Digest != first.Digest || second.Config.Cmd[0] != "sh" {
		t.Fatalf("second describe = %+v, %v; expected %+v without reading the store", second, err, first)
	}
	// another platform is another config, read from the store
	if _, err := b.mgr.Describe(b.ctx, img, "linux/arm64"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("describe for another platform: %v; expected a read that finds no config", err)
	}
}
