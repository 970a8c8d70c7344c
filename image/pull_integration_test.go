//go:build integration

package image_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

func TestEnsureConcurrentCallersShareOnePull(t *testing.T) {
	b := newBed(t)
	// Hold the blobs until every caller is in, so that they all overlap.
	hold := make(chan struct{})
	b.proxy.set(func(p *registryProxy) { p.holdBlob = hold })

	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	digests := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			img, err := imageOf(b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref}))
			errs[i] = err
			if err == nil {
				digests[i] = img.Target().Digest.String()
			}
		}(i)
	}
	waitUntil(t, "the pull reaches the blobs", func() bool { return b.proxy.countPrefix("/v2/test/busybox/blobs/") > 0 })
	time.Sleep(200 * time.Millisecond) // let stragglers arrive and join
	close(hold)
	wg.Wait()

	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if digests[i] != b.digest.String() {
			t.Fatalf("caller %d got %s", i, digests[i])
		}
	}
	tag := tagPath("test/busybox", "1")
	if n := b.proxy.count("HEAD", tag) + b.proxy.count("GET", tag); n != 1 {
		t.Errorf("tag resolved %d times, want 1", n)
	}
	if n := b.proxy.count("GET", "/v2/test/busybox/manifests/"+b.digest.String()); n > 1 {
		t.Errorf("manifest fetched %d times, want at most 1", n)
	}
	for d := range b.img.Blobs {
		if d == b.digest {
			continue
		}
		if n := b.proxy.count("GET", "/v2/test/busybox/blobs/"+d.String()); n != 1 {
			t.Errorf("blob %s fetched %d times, want 1", d, n)
		}
	}
	b.requireNoLeases(t)
}

func TestEnsureNotFoundIsNotRecoverable(t *testing.T) {
	b := newBed(t)
	ref := b.proxy.Host + "/test/missing:1"
	_, err := b.mgr.Ensure(b.ctx, image.Request{Ref: ref})
	if err == nil {
		t.Fatalf("ensure of %s succeeded", ref)
	}
	t.Logf("not found: %v", err)
	if image.IsRecoverable(err) || !errdefs.IsNotFound(err) {
		t.Errorf("not found: err %v, recoverable %v", err, image.IsRecoverable(err))
	}
	if !strings.Contains(err.Error(), `failed to pull image "`+ref+`"`) {
		t.Errorf("error %q does not name the image", err)
	}
	b.requireNoImage(t, ref)
	b.requireNoLeases(t)
}

func TestEnsureUnreachableRegistryIsRecoverable(t *testing.T) {
	b := newBed(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	ref := host + "/test/busybox:1"
	_, err = b.mgr.Ensure(b.ctx, image.Request{Ref: ref})
	if err == nil {
		t.Fatalf("ensure of %s succeeded", ref)
	}
	t.Logf("unreachable: %v", err)
	if !image.IsRecoverable(err) {
		t.Errorf("unreachable registry: IsRecoverable(%v) = false", err)
	}
	b.requireNoImage(t, ref)
	b.requireNoLeases(t)
}

func TestEnsureInvalidReference(t *testing.T) {
	b := newBed(t)
	_, err := b.mgr.Ensure(b.ctx, image.Request{Ref: "Not/Valid"})
	if !errors.Is(err, image.ErrInvalidReference) || image.IsRecoverable(err) {
		t.Fatalf("invalid reference: %v", err)
	}
	if b.proxy.countPrefix("/") != 0 {
		t.Fatal("an invalid reference reached a registry")
	}
}

func TestEnsureCancelledAndTimedOutPullsLeaveNoLease(t *testing.T) {
	b := newBed(t)
	hold := make(chan struct{})
	defer func() {
		select {
		case <-hold:
		default:
			close(hold)
		}
	}()
	b.proxy.set(func(p *registryProxy) { p.holdBlob = hold })

	// Two callers share a pull; the first gives up, the second still gets
	// the image.
	quitter, quit := context.WithCancel(b.ctx)
	quitErr := make(chan error, 1)
	go func() {
		_, err := b.mgr.Ensure(quitter, image.Request{Ref: b.ref})
		quitErr <- err
	}()
	waitUntil(t, "the pull reaches the blobs", func() bool { return b.proxy.countPrefix("/v2/test/busybox/blobs/") > 0 })
	stayErr := make(chan error, 1)
	go func() {
		_, err := b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref})
		stayErr <- err
	}()
	time.Sleep(500 * time.Millisecond) // the second caller joins the running pull
	quit()
	if err := <-quitErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v", err)
	}
	close(hold)
	if err := <-stayErr; err != nil {
		t.Fatalf("remaining caller: %v", err)
	}
	if n := b.proxy.count("HEAD", tagPath("test/busybox", "1")); n != 1 {
		t.Errorf("tag resolved %d times: the remaining caller did not share the pull", n)
	}
	b.requireNoLeases(t)

	// A pull that runs past its timeout fails, recoverably, and leaves
	// neither lease nor image.
	// A new config blob, which the pull has to fetch.
	slowImg, err := b.img.Derive(func(c *ocispec.ImageConfig) { c.Cmd = []string{"echo", "slow"} })
	if err != nil {
		t.Fatal(err)
	}
	ref := b.proxy.Host + "/test/slow:1"
	if _, err := slowImg.Push(b.ctx, b.reg.Host, "test/slow:1"); err != nil {
		t.Fatal(err)
	}
	slow := make(chan struct{})
	defer close(slow)
	b.proxy.set(func(p *registryProxy) { p.holdBlob = slow })
	_, err = b.mgr.Ensure(b.ctx, image.Request{Ref: ref, Timeout: 500 * time.Millisecond})
	if err == nil {
		t.Fatal("pull past its timeout succeeded")
	}
	t.Logf("timed out: %v", err)
	if !errors.Is(err, context.DeadlineExceeded) || !image.IsRecoverable(err) {
		t.Errorf("timed-out pull: err %v, recoverable %v", err, image.IsRecoverable(err))
	}
	b.requireNoImage(t, ref)
	b.requireNoLeases(t)
	requireNoIngests(t, b.cd)

	// A caller alone that gives up abandons the pull: its lease goes too.
	alone, giveUp := context.WithTimeout(b.ctx, 300*time.Millisecond)
	defer giveUp()
	if _, err := b.mgr.Ensure(alone, image.Request{Ref: ref}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("abandoning caller got %v", err)
	}
	waitUntil(t, "the abandoned pull's lease is deleted", func() bool {
		ls, err := b.cd.Client.LeasesService().List(b.cd.Context())
		return err == nil && len(ls) == 0
	})
	b.requireNoImage(t, ref)
}

func TestEnsureCredentials(t *testing.T) {
	b := newBed(t)
	const secret = "pa55-w0rd-for-tests"
	b.proxy.set(func(p *registryProxy) { p.user, p.pass = "ci-user", secret })

	_, err := b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref})
	if err == nil {
		t.Fatal("anonymous pull from a registry that wants credentials succeeded")
	}
	t.Logf("anonymous: %v", err)
	if image.IsRecoverable(err) {
		t.Errorf("missing credentials are recoverable: %v", err)
	}

	_, err = b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref, Auth: &image.Auth{Username: "ci-user", Password: "wrong-" + secret, ServerAddress: b.proxy.Host}})
	if err == nil || image.IsRecoverable(err) || strings.Contains(err.Error(), secret) {
		t.Errorf("wrong password: err %v, recoverable %v", err, image.IsRecoverable(err))
	}

	_, err = b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref, Auth: &image.Auth{Username: "ci-user", Password: secret, ServerAddress: "registry.example.com"}})
	if err == nil {
		t.Error("credentials for another registry were sent")
	}

	img, err := imageOf(b.mgr.Ensure(b.ctx, image.Request{Ref: b.ref, Auth: &image.Auth{Username: "ci-user", Password: secret, ServerAddress: "http://" + b.proxy.Host}}))
	if err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}
	if img.Target().Digest != b.digest {
		t.Fatalf("got %s", img.Target().Digest)
	}
	b.requireNoLeases(t)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !testbed.Poll(30*time.Second, 10*time.Millisecond, cond) {
		t.Fatalf("timed out waiting until %s", what)
	}
}
