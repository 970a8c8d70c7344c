//go:build integration

package driver

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/shoenig/test/must"
	"golang.org/x/sys/unix"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// usedPercent is df's use% of the filesystem holding path.
func usedPercent(t *testing.T, path string) float64 {
	t.Helper()
	var fs unix.Statfs_t
	must.NoError(t, unix.Statfs(path, &fs))
	used := fs.Blocks - fs.Bfree
	return float64(used) * 100 / float64(used+fs.Bavail)
}

// Disk-pressure GC on a loop filesystem holding containerd's root: one
// pull past gc.disk_high removes unused images least recently used first
// until the disk is at or below gc.disk_low. The image of a running task
// and a pinned image, both older than any, stay, and so does the image
// used most recently.
func TestDiskPressureGC(t *testing.T) {
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc")
	dir := t.TempDir()
	root := filepath.Join(dir, "root") // containerd's root, on a filesystem of its own
	testbed.LoopFS(t, root, 192)
	cd, err := testbed.LaunchContainerd(testbed.LaunchOptions{Dir: dir})
	must.NoError(t, err)
	t.Cleanup(func() { must.NoError(t, cd.Stop()) })
	testbed.LeakCheck(t, cd)
	testbed.ImportBusybox(t, cd, testImage)
	b := &bed{cd: cd}

	reg := testbed.StartRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	names := []string{"pinned", "a", "b", "c", "next"}
	for i, n := range names {
		// incompressible: the blob and the snapshot take 8 MiB each
		layer, err := testbed.FillerLayer(n, 8<<20, time.Now().UnixNano()+int64(i))
		must.NoError(t, err)
		img, err := testbed.BusyboxWith(&layer)
		must.NoError(t, err)
		_, err = reg.Push(ctx, img, "disk/"+n+":1")
		must.NoError(t, err)
	}
	ref := func(n string) string { return reg.Host + "/disk/" + n + ":1" }
	present := func(n string) bool {
		_, err := cd.Client.ImageService().Get(cd.Context(), n)
		return err == nil
	}

	// warm the images oldest first, without disk-pressure GC
	h1 := b.harness(t, "")
	running := newTask(t, rawTaskConfig{Command: "sleep", Args: []string{"300"}}) // busybox:test, the oldest image
	start(t, h1, running)
	for _, n := range names[:4] {
		warm := newTask(t, rawTaskConfig{Image: ref(n), PullOnly: true})
		start(t, h1, warm)
		must.Eq(t, 0, wait(t, h1, warm.ID, time.Minute).ExitCode)
		time.Sleep(1100 * time.Millisecond) // distinct update times, whatever their resolution
	}
	_, err = cd.Client.ImageService().Update(cd.Context(), images.Image{Name: ref("pinned"), Labels: map[string]string{image.DriverPinnedLabel: "true"}},
		"labels."+image.DriverPinnedLabel)
	must.NoError(t, err)

	// one image is s percent of the disk: the next pull goes past high,
	// removing a is not enough to reach low, removing b is
	before := usedPercent(t, root)
	s := 100 * 18.0 / 192 // 8 MiB blob, 8 MiB snapshot, metadata
	high, low := before+s/2, before-s/2
	t.Logf("disk %.1f%% used; one image about %.1f%%; watermarks %.1f%% / %.1f%%", before, s, high, low)
	h2 := b.harness(t, fmt.Sprintf("gc {\n disk_high = \"%.2f%%\"\n disk_low = \"%.2f%%\"\n disk_check_interval = \"1h\"\n}", high, low))
	fp := h2.Impl().(*Driver).fingerprint(context.Background())
	must.NotNil(t, fp.Attributes["driver.containerd.images.disk_used_percent"])
	must.NotNil(t, fp.Attributes["driver.containerd.images.disk_pressure"])

	next := newTask(t, rawTaskConfig{Image: ref("next"), PullOnly: true})
	start(t, h2, next)
	must.Eq(t, 0, wait(t, h2, next.ID, time.Minute).ExitCode)
	waitFor(t, time.Minute, "the least recently used images to go", func() bool { return !present(ref("a")) && !present(ref("b")) })
	waitFor(t, 10*time.Second, "the disk at or below the low watermark", func() bool { return usedPercent(t, root) <= low })
	for _, n := range []string{ref("pinned"), ref("c"), ref("next"), testImage} {
		must.True(t, present(n), must.Sprintf("%s was removed", n))
	}
	must.True(t, b.containerExists(t, containerID(running.Name, running.AllocID)))
	must.NoError(t, h1.StopTask(running.ID, time.Second, "SIGKILL"))
}
