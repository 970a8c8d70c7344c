//go:build integration

package testbed_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestPushAndPull pushes the busybox image to a registry of ours and pulls it
// into a containerd of ours.
func TestPushAndPull(t *testing.T) {
	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	reg := testbed.StartRegistry(t)

	ctx, cancel := context.WithTimeout(cd.Context(), 2*time.Minute)
	defer cancel()
	img, dgst := reg.PushBusybox(ctx, t, "test/busybox:1")
	if dgst != img.Digest() {
		t.Fatalf("push returned %s, image digest is %s", dgst, img.Digest())
	}

	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost)),
	})
	ref := reg.Host + "/test/busybox:1"
	pulled, err := cd.Client.Pull(ctx, ref, client.WithResolver(resolver), client.WithPullUnpack)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if got := pulled.Target().Digest; got != dgst {
		t.Fatalf("pulled %s, pushed %s", got, dgst)
	}
	if ok, err := pulled.IsUnpacked(ctx, "overlayfs"); err != nil || !ok {
		t.Fatalf("pulled image not unpacked: %v %v", ok, err)
	}
}

// TestBusyboxRuns imports the busybox image and runs a container from it.
func TestBusyboxRuns(t *testing.T) {
	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	img := testbed.ImportBusybox(t, cd, "testbed.local/busybox:1")

	ctx, cancel := context.WithTimeout(cd.Context(), time.Minute)
	defer cancel()
	ctr, err := cd.Client.NewContainer(ctx, "testbed-run",
		client.WithNewSnapshot("testbed-run", img),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithUser("app"),
			oci.WithProcessArgs("sh", "-c", "id; echo hi > /tmp/x && cat /tmp/x; ls /bin | grep -c ."),
		))
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup)

	var out strings.Builder
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &out)))
	if err != nil {
		t.Fatal(err)
	}
	defer task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
	exitCh, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st := <-exitCh
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if st.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode(), out.String())
	}
	got := out.String()
	if !strings.Contains(got, "uid=1000(app) gid=1000(app)") || !strings.Contains(got, "hi\n") {
		t.Fatalf("unexpected output:\n%s", got)
	}
}

// TestRegistryTLSAuth pushes to a registry with TLS and basic auth and pulls
// from it with credentials and the registry's CA.
func TestRegistryTLSAuth(t *testing.T) {
	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	reg := testbed.StartRegistry(t, testbed.RegistryOptions{TLS: true, User: "alice", Password: "s3cret"})

	img, err := testbed.BuildBusybox()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(cd.Context(), 2*time.Minute)
	defer cancel()
	if _, err := img.PushTo(ctx, reg.URL(), reg.HTTPClient(), "", "", "private/busybox:1"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("anonymous push: want 401, got %v", err)
	}
	dgst, err := reg.Push(ctx, img, "private/busybox:1")
	if err != nil {
		t.Fatal(err)
	}

	pull := func(user, pass string) (client.Image, error) {
		auth := docker.NewDockerAuthorizer(docker.WithAuthClient(reg.HTTPClient()),
			docker.WithAuthCreds(func(string) (string, string, error) { return user, pass, nil }))
		resolver := docker.NewResolver(docker.ResolverOptions{
			Hosts: docker.ConfigureDefaultRegistries(docker.WithClient(reg.HTTPClient()), docker.WithAuthorizer(auth)),
		})
		return cd.Client.Pull(ctx, reg.Host+"/private/busybox:1", client.WithResolver(resolver))
	}
	if _, err := pull("alice", "wrong"); err == nil {
		t.Fatal("pull with a wrong password succeeded")
	}
	pulled, err := pull("alice", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Target().Digest != dgst {
		t.Fatalf("pulled %s, pushed %s", pulled.Target().Digest, dgst)
	}
}

// TestCNINetCleanup checks that the bridge of a CNINet goes with its test.
func TestCNINetCleanup(t *testing.T) {
	var bridge string
	t.Run("inner", func(t *testing.T) {
		n := testbed.NewCNINet(t)
		bridge = n.Bridge
		if out, err := exec.Command("ip", "link", "add", bridge, "type", "bridge").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	})
	if exec.Command("ip", "link", "show", bridge).Run() == nil {
		t.Fatalf("bridge %s still there", bridge)
	}
}
