package testbed

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportImage writes img's blobs into the content store of cl, creates (or
// updates) the image record ref in ctx's namespace and unpacks it for
// snapshotter ("" means overlayfs). Everything happens under a temporary
// lease, which is gone when it returns.
func ImportImage(ctx context.Context, cl *client.Client, img *Image, ref, snapshotter string) (client.Image, error) {
	if snapshotter == "" {
		snapshotter = "overlayfs"
	}
	ctx, done, err := cl.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer done(context.WithoutCancel(ctx))

	cs := cl.ContentStore()
	write := func(desc ocispec.Descriptor, labels map[string]string) error {
		b := img.Blobs[desc.Digest]
		if desc.Digest == img.Digest() {
			b = img.ManifestBytes
		}
		var opts []content.Opt
		if labels != nil {
			opts = append(opts, content.WithLabels(labels))
		}
		err := content.WriteBlob(ctx, cs, "testbed-"+desc.Digest.Encoded(), bytes.NewReader(b), desc, opts...)
		if err != nil {
			return fmt.Errorf("write %s: %w", desc.Digest, err)
		}
		return nil
	}
	// children first, then the manifest with GC references to them
	labels := map[string]string{"containerd.io/gc.ref.content.config": img.Manifest.Config.Digest.String()}
	if err := write(img.Manifest.Config, nil); err != nil {
		return nil, err
	}
	for i, l := range img.Manifest.Layers {
		if err := write(l, nil); err != nil {
			return nil, err
		}
		labels[fmt.Sprintf("containerd.io/gc.ref.content.l.%d", i)] = l.Digest.String()
	}
	if err := write(img.Descriptor(), labels); err != nil {
		return nil, err
	}

	rec := images.Image{Name: ref, Target: img.Descriptor(), CreatedAt: time.Now(), UpdatedAt: time.Now()}
	is := cl.ImageService()
	if _, err := is.Create(ctx, rec); err != nil {
		if !errdefs.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create image %s: %w", ref, err)
		}
		if _, err := is.Update(ctx, rec, "target"); err != nil {
			return nil, fmt.Errorf("update image %s: %w", ref, err)
		}
	}
	ci := client.NewImage(cl, rec)
	if err := ci.Unpack(ctx, snapshotter); err != nil {
		return nil, fmt.Errorf("unpack %s: %w", ref, err)
	}
	return ci, nil
}

// ImportBusybox puts the busybox image into cd as ref, unpacked for overlayfs.
func ImportBusybox(t testing.TB, cd *Containerd, ref string) client.Image {
	t.Helper()
	img, err := BuildBusybox()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	ctx, cancel := context.WithTimeout(cd.Context(), time.Minute)
	defer cancel()
	ci, err := ImportImage(ctx, cd.Client, img, ref, "")
	if err != nil {
		t.Fatalf("testbed: import %s: %v", ref, err)
	}
	return ci
}
