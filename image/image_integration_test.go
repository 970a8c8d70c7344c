//go:build integration

package image_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// bed is one hermetic containerd and registry, with a proxy in front of the
// registry and the busybox image pushed as test/busybox:1.
type bed struct {
	cd     *testbed.Containerd
	reg    *testbed.Registry
	proxy  *registryProxy
	mgr    *image.Manager
	img    *testbed.Image
	digest digest.Digest
	ref    string // through the proxy
	ctx    context.Context
}

func newBed(t *testing.T) *bed {
	t.Helper()
	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	reg := testbed.StartRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	img, dgst := reg.PushBusybox(ctx, t, "test/busybox:1")
	proxy := startProxy(t, reg.Host)
	logger := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testbed.TestLog(t)})
	return &bed{
		cd: cd, reg: reg, proxy: proxy, img: img, digest: dgst, ctx: ctx,
		mgr: image.NewManager(cd.Client, cd.Namespace, image.Config{PullTimeout: time.Minute}, logger),
		ref: proxy.Host + "/test/busybox:1",
	}
}

// requireNoLeases fails when a lease is left in the namespace.
func (b *bed) requireNoLeases(t *testing.T) {
	t.Helper()
	requireNoLeases(t, b.cd)
}

// requireNoLeases fails when a lease is left in cd's namespace.
func requireNoLeases(t *testing.T, cd *testbed.Containerd) {
	t.Helper()
	ls, err := cd.Client.LeasesService().List(cd.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		t.Errorf("lease %s left behind (labels %v)", l.ID, l.Labels)
	}
}

func (b *bed) requireNoImage(t *testing.T, ref string) {
	t.Helper()
	if _, err := b.cd.Client.ImageService().Get(b.cd.Context(), ref); !errdefs.IsNotFound(err) {
		t.Errorf("image %s in the store after a failed pull (err %v)", ref, err)
	}
}

func tagPath(repo, tag string) string { return "/v2/" + repo + "/manifests/" + tag }

func TestEnsurePullsThenUsesLocalImage(t *testing.T) {
	b := newBed(t)
	img, err := imageOf(b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref}))
	if err != nil {
		t.Fatalf("ensure %s: %v", b.ref, err)
	}
	if img.Target().Digest != b.digest {
		t.Fatalf("got %s, pushed %s", img.Target().Digest, b.digest)
	}
	if ok, err := img.IsUnpacked(b.cd.Context(), "overlayfs"); err != nil || !ok {
		t.Fatalf("image not unpacked: %v %v", ok, err)
	}
	if b.proxy.count("HEAD", tagPath("test/busybox", "1"))+b.proxy.count("GET", tagPath("test/busybox", "1")) == 0 {
		t.Fatal("the pull did not resolve the tag through the proxy")
	}
	b.requireNoLeases(t)

	// The registry is gone (the proxy answers 502): the local image must do,
	// without asking.
	if err := b.reg.Stop(); err != nil {
		t.Fatal(err)
	}
	before := b.proxy.countPrefix("/v2/")
	again, err := imageOf(b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref}))
	if err != nil {
		t.Fatalf("second ensure with the registry stopped: %v", err)
	}
	if again.Target().Digest != b.digest {
		t.Fatalf("second ensure got %s", again.Target().Digest)
	}
	if n := b.proxy.countPrefix("/v2/"); n != before {
		t.Fatalf("second ensure made %d registry requests", n-before)
	}

	// Another snapshotter: unpacked from the local content, still without
	// asking the registry.
	native := image.NewManager(b.cd.Client, b.cd.Namespace, image.Config{Snapshotter: "native"}, hclog.NewNullLogger())
	nimg, err := imageOf(native.Ensure(b.ctx, image.Request{Ref: b.ref}))
	if err != nil {
		t.Fatalf("ensure for the native snapshotter with the registry stopped: %v", err)
	}
	if ok, err := nimg.IsUnpacked(b.cd.Context(), "native"); err != nil || !ok {
		t.Fatalf("not unpacked for native: %v %v", ok, err)
	}
	if n := b.proxy.countPrefix("/v2/"); n != before {
		t.Fatalf("unpacking for another snapshotter made %d registry requests", n-before)
	}

	info, err := image.Describe(b.cd.Context(), again)
	if err != nil {
		t.Fatal(err)
	}
	if info.Ref != b.ref || info.Digest != b.digest.String() || strings.Join(info.Config.Cmd, " ") != "sh" {
		t.Fatalf("describe = %+v, want ref %s digest %s cmd [sh]", info, b.ref, b.digest)
	}

	// A forced pull asks the registry even though the image is local.
	_, err = b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref, ForcePull: true})
	if err == nil {
		t.Fatal("forced pull from a stopped registry succeeded")
	}
	if b.proxy.countPrefix("/v2/") == before {
		t.Fatal("forced pull did not ask the registry")
	}
	if !image.IsRecoverable(err) {
		t.Errorf("registry down (502): IsRecoverable(%v) = false", err)
	}

	// Nothing listens any more: unreachable, recoverable.
	b.proxy.Close()
	_, err = b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref, ForcePull: true})
	if err == nil || !image.IsRecoverable(err) {
		t.Fatalf("forced pull from an unreachable registry: err %v, recoverable %v", err, image.IsRecoverable(err))
	}
	b.requireNoLeases(t)
}

func TestEnsureForcePull(t *testing.T) {
	b := newBed(t)
	if _, err := b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref}); err != nil {
		t.Fatal(err)
	}
	tag := tagPath("test/busybox", "1")
	before := b.proxy.count("HEAD", tag) + b.proxy.count("GET", tag)
	if _, err := b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref}); err != nil {
		t.Fatal(err)
	}
	if n := b.proxy.count("HEAD", tag) + b.proxy.count("GET", tag); n != before {
		t.Fatalf("ensure of a local image resolved the tag %d times", n-before)
	}

	// The tag now names another image: a forced pull must pick it up.
	derived, err := b.img.Derive(func(c *ocispec.ImageConfig) { c.Cmd = []string{"echo", "v2"} })
	if err != nil {
		t.Fatal(err)
	}
	d2, err := derived.Push(b.ctx, b.reg.Host, "test/busybox:1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := imageOf(b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref, ForcePull: true}))
	if err != nil {
		t.Fatalf("forced pull: %v", err)
	}
	if n := b.proxy.count("HEAD", tag) + b.proxy.count("GET", tag); n <= before {
		t.Fatal("forced pull did not resolve the tag")
	}
	if img.Target().Digest != d2 {
		t.Fatalf("forced pull got %s, registry has %s", img.Target().Digest, d2)
	}
	b.requireNoLeases(t)
}

func TestEnsureDigestPin(t *testing.T) {
	b := newBed(t)
	pinned := b.proxy.Host + "/test/busybox@" + b.digest.String()
	img, err := imageOf(b.mgr.Ensure(b.ctx, image.Request{Ref: pinned}))
	if err != nil {
		t.Fatalf("ensure %s: %v", pinned, err)
	}
	if img.Name() != pinned || img.Target().Digest != b.digest {
		t.Fatalf("got %s %s, want %s", img.Name(), img.Target().Digest, pinned)
	}
	// A tag next to the pin is dropped: the digest is what counts.
	before := b.proxy.countPrefix("/v2/")
	img, err = imageOf(b.mgr.Ensure(b.ctx, image.Request{Ref: b.proxy.Host + "/test/busybox:other@" + b.digest.String()}))
	if err != nil || img.Target().Digest != b.digest {
		t.Fatalf("ensure of tag+digest: %v", err)
	}
	if b.proxy.countPrefix("/v2/") != before {
		t.Fatal("a local pinned image was fetched again")
	}
	b.requireNoLeases(t)
}

func TestEnsureDigestPinMismatch(t *testing.T) {
	b := newBed(t)

	// A digest the repository does not have.
	wrong := digest.FromString("not the busybox manifest")
	pinned := b.proxy.Host + "/test/busybox@" + wrong.String()
	_, err := b.mgr.Ensure(b.ctx, image.Request{Ref: pinned})
	if err == nil {
		t.Fatalf("ensure of %s succeeded", pinned)
	}
	t.Logf("unknown pin: %v", err)
	if image.IsRecoverable(err) {
		t.Errorf("unknown pin is recoverable: %v", err)
	}
	for _, want := range []string{"pinned digest " + wrong.String(), "not found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	b.requireNoImage(t, pinned)

	// The registry serves other bytes for the pinned digest.
	b.proxy.set(func(p *registryProxy) { p.corrupt = "/v2/test/busybox/manifests/" + b.digest.String() })
	pinned = b.proxy.Host + "/test/busybox@" + b.digest.String()
	_, err = b.mgr.Ensure(b.ctx, image.Request{Ref: pinned})
	if err == nil {
		t.Fatal("ensure of a pin with tampered content succeeded")
	}
	t.Logf("tampered content: %v", err)
	if !errors.Is(err, image.ErrDigestMismatch) || image.IsRecoverable(err) {
		t.Errorf("tampered content: err %v, want a non-recoverable digest mismatch", err)
	}
	if !strings.Contains(err.Error(), b.digest.String()) {
		t.Errorf("error %q does not name the digest", err)
	}
	b.requireNoImage(t, pinned)
	b.requireNoLeases(t)
}
