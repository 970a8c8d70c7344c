//go:build integration

package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// startDeadline bounds a StartTask that must fail rather than hang.
const startDeadline = 90 * time.Second

// startWithin runs StartTask and fails the test when it has not returned
// within startDeadline.
func startWithin(t *testing.T, h *testbed.Harness, task *drivers.TaskConfig) error {
	t.Helper()
	return startBefore(t, h, task, startDeadline, fmt.Sprintf("StartTask did not return within %s", startDeadline))
}

// TestContainerdDownAtStart kills containerd under a plugin that was
// talking to it: a start fails at once with a recoverable error that says
// containerd is unreachable, so that Nomad restarts the task later.
func TestContainerdDownAtStart(t *testing.T) {
	b := newBed(t)
	h := b.harness(t, "")
	first := newTask(t, sh("exit 0"))
	startExitsZero(t, h, first, 30*time.Second)

	must.NoError(t, syscall.Kill(b.cd.PID, syscall.SIGKILL))
	waitFor(t, 30*time.Second, "containerd gone", func() bool { return syscall.Kill(b.cd.PID, 0) != nil })

	task := newTask(t, sh("exit 0"))
	t.Cleanup(h.MkAllocDir(task, true))
	began := time.Now()
	err := startWithin(t, h, task)
	t.Logf("after %s: %v", time.Since(began), err)
	must.Error(t, err)
	must.True(t, structs.IsRecoverable(err), must.Sprintf("not recoverable: %v", err))
	must.StrContains(t, err.Error(), b.cd.Address)
}

// bigImage pushes busybox plus a filler layer of fillerMiB as repo:1 and
// returns its reference and layer bytes.
func bigImage(t *testing.T, reg *testbed.Registry, repo string, fillerMiB int) (string, int64) {
	t.Helper()
	bb, err := testbed.BuildBusybox()
	must.NoError(t, err)
	filler, err := testbed.FillerLayer("big", fillerMiB<<20, 42)
	must.NoError(t, err)
	img, err := bb.Derive(func(c *ocispec.ImageConfig) {}, filler)
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = reg.Push(ctx, img, repo+":1")
	must.NoError(t, err)
	var size int64
	for _, l := range img.Manifest.Layers {
		size += l.Size
	}
	return reg.Host + "/" + repo + ":1", size
}

// nothingPartial checks that a failed pull left neither the image, nor a
// lease, an ingest, a snapshot under way, a container or a task.
func nothingPartial(t *testing.T, cd *testbed.Containerd, ref string) {
	t.Helper()
	ctx := cd.Context()
	_, err := cd.Client.ImageService().Get(ctx, ref)
	must.True(t, errdefs.IsNotFound(err), must.Sprintf("image %s: %v", ref, err))
	ingests, err := cd.Client.ContentStore().ListStatuses(ctx)
	must.NoError(t, err)
	must.SliceEmpty(t, ingests, must.Sprint("partial content left"))
	must.SliceEmpty(t, testbed.Leaks(ctx, cd))
}

// TestRegistryKilledMidPull kills the registry while a large layer is on
// its way: the start fails with a recoverable error, nothing of the pull is
// left, and a start once the registry is back pulls and runs the image.
func TestRegistryKilledMidPull(t *testing.T) {
	b := newCheckedBed(t)
	reg := testbed.StartRegistry(t)
	hostsDir, err := reg.WriteHostsDir(t.TempDir())
	must.NoError(t, err)
	ref, size := bigImage(t, reg, "fault/big", 64)
	h := b.harness(t, fmt.Sprintf("registry_config_dir = %q\n", hostsDir))

	// kill the registry once a large part of the layer has arrived
	killed := make(chan int64, 1)
	ctx, cancel := context.WithCancel(b.cd.Context())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			sts, _ := b.cd.Client.ContentStore().ListStatuses(ctx)
			for _, st := range sts {
				if st.Total > size/2 && st.Offset > 0 && st.Offset < st.Total {
					reg.Kill()
					killed <- st.Offset
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	task := newTask(t, rawTaskConfig{Image: ref, Command: "sh", Args: []string{"-c", "echo ran"}})
	t.Cleanup(h.MkAllocDir(task, true))
	err = startWithin(t, h, task)
	cancel()
	select {
	case at := <-killed:
		t.Logf("registry killed at %d of %d layer bytes: %v", at, size, err)
	default:
		t.Fatalf("the pull ended before the registry was killed: %v", err)
	}
	must.Error(t, err)
	must.True(t, structs.IsRecoverable(err), must.Sprintf("not recoverable: %v", err))
	must.StrContains(t, err.Error(), ref)
	nothingPartial(t, b.cd, ref)

	must.NoError(t, reg.Restart())
	again := newTask(t, rawTaskConfig{Image: ref, Command: "sh", Args: []string{"-c", "echo ran"}})
	startExitsZero(t, h, again, time.Minute)
}

// TestContainerdRootFull runs containerd with its root on a small
// filesystem and starts an image that fits while it downloads but not once
// it is unpacked as well: the start fails with an error that says the space
// ran out, nothing of the pull is left, and once space is freed a start
// works.
func TestContainerdRootFull(t *testing.T) {
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	testbed.LoopFS(t, root, 64)
	cd, err := testbed.LaunchContainerd(testbed.LaunchOptions{Dir: dir})
	must.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log (tail):\n%s", cd.LogTail(8192))
		}
		if err := cd.Stop(); err != nil {
			t.Errorf("containerd cleanup: %v", err)
		}
	})
	testbed.LeakCheck(t, cd)
	b := &bed{cd: cd}
	reg := testbed.StartRegistry(t)
	hostsDir, err := reg.WriteHostsDir(t.TempDir())
	must.NoError(t, err)
	ref, size := bigImage(t, reg, "fault/unpack", 20)
	h := b.harness(t, fmt.Sprintf("registry_config_dir = %q\n", hostsDir))

	// leave room for the download and a little more, not for the unpacked layers
	free, err := testbed.FreeBytes(root)
	must.NoError(t, err)
	fillerSize := free - size - 6<<20
	must.Positive(t, fillerSize)
	filler := filepath.Join(root, "filler")
	fillFile(t, filler, fillerSize)

	task := newTask(t, rawTaskConfig{Image: ref, Command: "sh", Args: []string{"-c", "echo ran"}})
	t.Cleanup(h.MkAllocDir(task, true))
	err = startWithin(t, h, task)
	must.Error(t, err)
	t.Log(err)
	must.StrContains(t, err.Error(), "containerd's root filesystem is full")
	must.StrContains(t, err.Error(), "no space left on device")
	must.StrContains(t, err.Error(), ref)
	must.True(t, structs.IsRecoverable(err), must.Sprintf("not recoverable: %v", err))
	nothingPartial(t, cd, ref)
	must.Eq(t, 0, countSnapshots(t, cd), must.Sprint("snapshots of a failed pull left"))

	must.NoError(t, os.Remove(filler))
	again := newTask(t, rawTaskConfig{Image: ref, Command: "sh", Args: []string{"-c", "echo ran"}})
	startExitsZero(t, h, again, time.Minute)
	eventually(t, "output", func() bool { return strings.Contains(logs(t, again, "stdout"), "ran") })
}

// fillFile allocates a file of size bytes.
func fillFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	must.NoError(t, err)
	defer f.Close()
	must.NoError(t, syscall.Fallocate(int(f.Fd()), 0, 0, size))
}

// countSnapshots counts cd's overlayfs snapshots, committed ones too.
func countSnapshots(t *testing.T, cd *testbed.Containerd) int {
	t.Helper()
	n := 0
	err := cd.Client.SnapshotService("overlayfs").Walk(cd.Context(), func(context.Context, snapshots.Info) error {
		n++
		return nil
	})
	must.NoError(t, err)
	return n
}
