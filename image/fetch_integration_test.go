//go:build integration

package image_test

import (
	"context"
	"encoding/json"
	"maps"
	"runtime"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestEnsureFetchesTheVerifiedDigest moves the tag right after the
// verification passed: the pull still gets the digest that was verified.
func TestEnsureFetchesTheVerifiedDigest(t *testing.T) {
	for _, path := range fetchPaths {
		t.Run(path.name, func(t *testing.T) {
			b := newBed(t)
			mgr, checkPath := path.use(t, b, image.Config{})
			moved, err := b.img.Derive(func(c *ocispec.ImageConfig) { c.Cmd = []string{"echo", "moved"} })
			if err != nil {
				t.Fatal(err)
			}
			var verified []digest.Digest
			check := func(ctx context.Context, ref string, d digest.Digest) error {
				verified = append(verified, d)
				_, err := moved.Push(ctx, b.reg.Host, "test/busybox:1")
				return err
			}
			img, err := imageOf(mgr.Ensure(b.ctx, image.Request{Ref: b.ref, Verify: check, VerifyKey: "moves the tag"}))
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			checkPath()
			if len(verified) != 1 || verified[0] != b.digest {
				t.Fatalf("verified %v, want once %s", verified, b.digest)
			}
			if img.Target().Digest != b.digest {
				t.Fatalf("pulled %s after verifying %s (the tag now names %s)", img.Target().Digest, b.digest, moved.Digest())
			}
			rec, err := b.cd.Client.ImageService().Get(b.cd.Context(), b.ref)
			if err != nil || rec.Target.Digest != b.digest {
				t.Fatalf("stored %s as %+v (%v), want %s", b.ref, rec.Target, err, b.digest)
			}
			tag := tagPath("test/busybox", "1")
			if n := b.proxy.count("HEAD", tag) + b.proxy.count("GET", tag); n != 1 {
				t.Errorf("tag resolved %d times, want once", n)
			}
			b.requireNoLeases(t)
		})
	}
}

// forPlatform is img with a config that names platform p (same layers).
func forPlatform(t *testing.T, img *testbed.Image, p ocispec.Platform) *testbed.Image {
	t.Helper()
	out := &testbed.Image{Config: img.Config, Manifest: img.Manifest, Blobs: maps.Clone(img.Blobs)}
	out.Config.Platform = p
	cb, err := json.Marshal(out.Config)
	if err != nil {
		t.Fatal(err)
	}
	delete(out.Blobs, img.Manifest.Config.Digest)
	out.Manifest.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	out.Blobs[out.Manifest.Config.Digest] = cb
	if out.ManifestBytes, err = json.Marshal(out.Manifest); err != nil {
		t.Fatal(err)
	}
	return out
}

// pushIndex pushes imgs and an index of them, each under its config's
// platform, as repoTag.
func (b *bed) pushIndex(t *testing.T, repoTag string, imgs ...*testbed.Image) {
	t.Helper()
	repo, tag := testbed.SplitRepoTag(repoTag)
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, img := range imgs {
		p := img.Config.Platform
		if _, err := img.Push(b.ctx, b.reg.Host, repo+":"+tag+"-"+p.Architecture+p.Variant); err != nil {
			t.Fatal(err)
		}
		desc := img.Descriptor()
		desc.Platform = &p
		idx.Manifests = append(idx.Manifests, desc)
	}
	ib, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testbed.PushManifest(b.ctx, b.reg.Host, repoTag, ocispec.MediaTypeImageIndex, ib, nil); err != nil {
		t.Fatal(err)
	}
}

// configDigest is the digest of the config of img for the platform it was
// looked up with.
func configDigest(t *testing.T, b *bed, img client.Image) digest.Digest {
	t.Helper()
	cfg, err := img.Config(b.cd.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Digest
}

// TestPlatformFromIndex pulls from multi-platform indexes the manifest of
// this machine's platform (or the one asked for), only that one, and falls
// back to a platform this machine also runs.
func TestPlatformFromIndex(t *testing.T) {
	host := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	for _, path := range fetchPaths {
		t.Run(path.name, func(t *testing.T) {
			b := newBed(t)
			mgr, checkPath := path.use(t, b, image.Config{})
			native := forPlatform(t, b.img, host)
			arm64 := forPlatform(t, b.img, ocispec.Platform{OS: "linux", Architecture: "arm64"})
			if runtime.GOARCH == "arm64" {
				arm64 = forPlatform(t, b.img, ocispec.Platform{OS: "linux", Architecture: "riscv64"})
			}
			other := arm64.Config.Platform.Architecture
			b.pushIndex(t, "test/multi:1", arm64, native)
			ref := b.proxy.Host + "/test/multi:1"

			img, err := imageOf(mgr.Ensure(b.ctx, image.Request{Ref: ref}))
			if err != nil {
				t.Fatalf("pull of the index: %v", err)
			}
			checkPath()
			if got := configDigest(t, b, img); got != native.Manifest.Config.Digest {
				t.Fatalf("pulled config %s, want this machine's %s", got, native.Manifest.Config.Digest)
			}
			if ok, err := img.IsUnpacked(b.cd.Context(), "overlayfs"); err != nil || !ok {
				t.Fatalf("not unpacked: %v %v", ok, err)
			}
			if n := b.proxy.count("GET", "/v2/test/multi/manifests/"+arm64.Digest().String()); n != 0 {
				t.Errorf("the %s manifest was fetched %d times", other, n)
			}

			img, err = imageOf(mgr.Ensure(b.ctx, image.Request{Ref: ref, Platform: "linux/" + other, ForcePull: true}))
			if err != nil {
				t.Fatalf("pull of the index for linux/%s: %v", other, err)
			}
			if got := configDigest(t, b, img); got != arm64.Manifest.Config.Digest {
				t.Fatalf("pulled config %s for linux/%s, want %s", got, other, arm64.Manifest.Config.Digest)
			}

			// An index with only a platform this machine also runs.
			compat := map[string]string{"amd64": "386", "arm64": "arm"}[runtime.GOARCH]
			if compat == "" {
				t.Skipf("no platform that %s also runs is known to this test", runtime.GOARCH)
			}
			cp := ocispec.Platform{OS: "linux", Architecture: compat}
			if compat == "arm" {
				cp.Variant = "v7"
			}
			older := forPlatform(t, b.img, cp)
			b.pushIndex(t, "test/compat:1", arm64, older)
			img, err = imageOf(mgr.Ensure(b.ctx, image.Request{Ref: b.proxy.Host + "/test/compat:1"}))
			if err != nil {
				t.Fatalf("pull of an index with linux/%s: %v", compat, err)
			}
			if got := configDigest(t, b, img); got != older.Manifest.Config.Digest {
				t.Fatalf("pulled config %s, want the linux/%s one %s", got, compat, older.Manifest.Config.Digest)
			}
			b.requireNoLeases(t)
		})
	}
}

// TestTransferForAnotherSnapshotter pulls for a snapshotter that the
// transfer service does not unpack for (the test bed's containerd unpacks
// only for overlayfs, its default): the image is unpacked after the fetch.
func TestTransferForAnotherSnapshotter(t *testing.T) {
	b := newBed(t)
	path := fetchPath{"transfer service, unpacked after", 0, "unpacking through the client"}
	mgr, checkPath := path.use(t, b, image.Config{Snapshotter: "native"})
	img, err := imageOf(mgr.Ensure(b.ctx, image.Request{Ref: b.ref}))
	if err != nil {
		t.Fatalf("pull for native: %v", err)
	}
	checkPath()
	if ok, err := img.IsUnpacked(b.cd.Context(), "native"); err != nil || !ok {
		t.Fatalf("not unpacked for native: %v %v", ok, err)
	}
	// The manager remembers: the next pull asks for no unpack it would
	// refuse, and resolves the tag once.
	tag := tagPath("test/busybox", "1")
	before := b.proxy.count("HEAD", tag) + b.proxy.count("GET", tag)
	if _, err := mgr.Ensure(b.ctx, image.Request{Ref: b.ref, ForcePull: true}); err != nil {
		t.Fatalf("second pull for native: %v", err)
	}
	if n := b.proxy.count("HEAD", tag) + b.proxy.count("GET", tag) - before; n != 1 {
		t.Errorf("second pull resolved the tag %d times, want once", n)
	}
	b.requireNoLeases(t)
	requireNoIngests(t, b.cd)
}
