//go:build integration

package driver

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestLeftoverContainer creates a task's container with the driver's own
// labels and ID, and its task, without starting it, the way a plugin that
// died between create and start leaves it: a new StartTask with the same
// task removes the leftover and runs, with one container.
func TestLeftoverContainer(t *testing.T) {
	b := newCheckedBed(t)
	h := b.harness(t, "")
	task := newTask(t, sh("echo ran"))
	id := containerID(task.Name, task.AllocID)

	ctx := b.cd.Context()
	img, err := b.cd.Client.GetImage(ctx, testImage)
	must.NoError(t, err)
	ctr, err := b.cd.Client.NewContainer(ctx, id, client.WithImage(img), client.WithSnapshotter("overlayfs"),
		client.WithNewSnapshot(id, img), client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "300")),
		client.WithContainerLabels(containerLabels(task, id, nil)))
	must.NoError(t, err)
	leftover, err := ctr.NewTask(ctx, cio.NullIO)
	must.NoError(t, err)
	t.Logf("leftover task created, pid %d, not started", leftover.Pid())

	startExitsZero(t, h, task, 30*time.Second)
	eventually(t, "the task's output", func() bool { return strings.Contains(logs(t, task, "stdout"), "ran") })
	cs, err := b.cd.Client.Containers(ctx, `labels."nomad.alloc_id"==`+task.AllocID)
	must.NoError(t, err)
	must.Len(t, 1, cs, must.Sprint("one container for the task"))
	must.NoError(t, h.DestroyTask(task.ID, true))
	b.nothingLeft(t, task)
}

// silentRegistry accepts TCP connections on loopback and never answers;
// it returns its host:port.
func silentRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	conns := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		for {
			select {
			case c := <-conns:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return l.Addr().String()
}

// TestHungRegistryTrustCheck starts an image that is present locally under
// an enforce rule whose registry accepts connections and never answers:
// the trust check ends with the task's image_pull_timeout and the start
// fails with a recoverable error, leaving nothing.
func TestHungRegistryTrustCheck(t *testing.T) {
	b := newCheckedBed(t)
	host := silentRegistry(t)
	ref := host + "/hung/busybox:1"
	ctx := b.cd.Context()
	src, err := b.cd.Client.ImageService().Get(ctx, testImage)
	must.NoError(t, err)
	_, err = b.cd.Client.ImageService().Create(ctx, images.Image{Name: ref, Target: src.Target})
	must.NoError(t, err)
	t.Cleanup(func() { _ = b.cd.Client.ImageService().Delete(b.cd.Context(), ref) })
	key := testbed.NewCosign(t).GenerateKeyPair(t, "trusted")
	trust := fmt.Sprintf("trust {\n rule {\n  prefix = %q\n  public_keys = [%q]\n  policy = \"enforce\"\n }\n}\n", host+"/hung/", key.Public)
	h := b.harness(t, trust)

	const pullTimeout = 3 * time.Second
	task := newTask(t, rawTaskConfig{Image: ref, Command: "true", ImagePullTimeout: pullTimeout.String()})
	t.Cleanup(h.MkAllocDir(task, true))
	began := time.Now()
	err = startWithin(t, h, task)
	took := time.Since(began)
	t.Logf("after %s: %v", took, err)
	must.Error(t, err)
	must.True(t, structs.IsRecoverable(err), must.Sprintf("not recoverable: %v", err))
	must.Less(t, pullTimeout+10*time.Second, took, must.Sprint("the start outlived its pull timeout"))
	b.nothingLeft(t, task)
}

// TestGCKeepsImageOfStartingTask holds a start between getting its image
// and creating its container while the image's GC delay (1 s), armed by the
// destroy of another task of the image, runs out: the image is kept and the
// start runs.
func TestGCKeepsImageOfStartingTask(t *testing.T) {
	b := newBed(t)
	h := b.harness(t, "gc {\n image_delay = \"1s\"\n}\n")
	first := newTask(t, sh("exit 0"))
	startExitsZero(t, h, first, 30*time.Second)

	second := newTask(t, sh("echo ran"))
	held := make(chan struct{})
	h.Impl().(*Driver).afterImage = func(cfg *drivers.TaskConfig) {
		if cfg.ID != second.ID {
			return
		}
		// the only container of the image goes: its removal is armed
		must.NoError(t, h.Impl().DestroyTask(first.ID, true))
		time.Sleep(2500 * time.Millisecond)
		close(held)
	}
	start(t, h, second)
	<-held
	must.Eq(t, 0, wait(t, h, second.ID, 30*time.Second).ExitCode)
	_, err := b.cd.Client.ImageService().Get(b.cd.Context(), testImage)
	must.NoError(t, err, must.Sprint("the image of a starting task was removed"))
}

// containerIn reports whether container id exists in containerd namespace ns.
func (b *bed) containerIn(t *testing.T, ns, id string) bool {
	t.Helper()
	cs, err := b.cd.Client.Containers(namespaces.WithNamespace(context.Background(), ns), "id=="+id)
	must.NoError(t, err)
	return len(cs) > 0
}

// TestNamespaceChangeAcrossRestart starts two tasks under a plugin in the
// test bed's namespace, which then dies; the next plugin is configured with
// another namespace. It recovers one task from the namespace saved in its
// state (running, not started again, nothing in the new namespace), and its
// reconciler removes the other, left dangling in the old namespace.
func TestNamespaceChangeAcrossRestart(t *testing.T) {
	b := newCheckedBed(t)
	old := b.harness(t, "gc {\n container = false\n}\n")
	kept := newTask(t, sh("sleep 300"))
	kept.Name = "kept"
	keptHandle := startAbandoned(t, old, kept)
	orphan := newTask(t, sh("sleep 300"))
	orphan.Name = "orphan"
	startAbandoned(t, old, orphan)
	abandon(old)
	keptID, orphanID := containerID(kept.Name, kept.AllocID), containerID(orphan.Name, orphan.AllocID)

	const newNS = "nomad-moved"
	h := b.harness(t, fmt.Sprintf("namespace = %q\ngc {\n container_grace = \"2s\"\n}\n", newNS))
	must.NoError(t, h.RecoverTask(keptHandle))
	t.Cleanup(func() { _ = h.Impl().DestroyTask(kept.ID, true) })
	st, err := h.InspectTask(kept.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, st.State)
	must.True(t, b.containerIn(t, b.cd.Namespace, keptID))
	must.False(t, b.containerIn(t, newNS, keptID), must.Sprint("a duplicate in the new namespace"))

	waitFor(t, 30*time.Second, "the orphan in the old namespace removed", func() bool { return !b.containerIn(t, b.cd.Namespace, orphanID) })
	must.False(t, b.snapshotExists(t, orphanID))
	must.True(t, b.containerIn(t, b.cd.Namespace, keptID), must.Sprint("the reconciler removed the recovered task"))

	must.NoError(t, h.StopTask(kept.ID, time.Second, "SIGKILL"))
	must.NoError(t, h.DestroyTask(kept.ID, true))
	must.False(t, b.containerIn(t, b.cd.Namespace, keptID))
	must.False(t, b.snapshotExists(t, keptID))
}
