//go:build integration

package driver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// usedPercent is df's use% of the filesystem holding path.
func usedPercent(t *testing.T, path string) float64 {
	t.Helper()
	used, err := testbed.UsedPercent(path)
	must.NoError(t, err)
	return used
}

// Disk-pressure GC on a loop filesystem holding containerd's root: one
// pull past gc.disk_high removes unused images least recently used first
// until the disk is at or below gc.disk_low. The image of a running task
// and a pinned image, both older than any, stay, and so does the image
// used most recently. The order holds across a plugin restart, from the
// last uses written on the images, whatever else changed their records.
func TestDiskPressureGC(t *testing.T) {
	cd, root := testbed.StartContainerdOnLoopFS(t, 192)
	testbed.LeakCheck(t, cd)
	testbed.ImportBusybox(t, cd, testImage)
	b := &bed{cd: cd}

	reg := testbed.StartRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	names := []string{"pinned", "a", "b", "c", "next"}
	// incompressible: the blob and the snapshot take 8 MiB each
	refs, err := testbed.PushFillers(ctx, reg, "disk", names, 8<<20, time.Now().UnixNano())
	must.NoError(t, err)
	ref := func(n string) string { return refs[n] }
	present := func(n string) bool {
		_, err := cd.Client.ImageService().Get(cd.Context(), n)
		return err == nil
	}

	// use the images oldest first, without disk-pressure GC; then change
	// their records newest first, as an operator labelling them would:
	// containerd's update times now say the opposite of their last use
	h1 := b.harness(t, "")
	running := newTask(t, rawTaskConfig{Command: "sleep", Args: []string{"300"}}) // busybox:test, the oldest image
	handle := start(t, h1, running)
	for _, n := range names[:4] {
		use := newTask(t, rawTaskConfig{Image: ref(n), Command: "true"})
		startExitsZero(t, h1, use, time.Minute)
		must.NoError(t, h1.DestroyTask(use.ID, true))
		time.Sleep(1100 * time.Millisecond) // distinct last uses, written to the second
	}
	waitFor(t, 10*time.Second, "the last uses on the labels", func() bool {
		for _, n := range names[:4] {
			if img, err := cd.Client.ImageService().Get(cd.Context(), ref(n)); err != nil || img.Labels[image.LastUsedLabel] == "" {
				return false
			}
		}
		return true
	})
	for _, n := range []string{"c", "b", "a"} {
		_, err = cd.Client.ImageService().Update(cd.Context(), images.Image{Name: ref(n), Labels: map[string]string{"team": "web"}}, "labels.team")
		must.NoError(t, err)
		time.Sleep(10 * time.Millisecond)
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
	// the plugin restarts with watermarks: it knows the last uses from the
	// images' labels alone, and recovers the running task
	h1.Impl().(*Driver).Shutdown()
	h2 := b.harness(t, fmt.Sprintf("gc {\n disk_high = \"%.2f%%\"\n disk_low = \"%.2f%%\"\n disk_check_interval = \"1h\"\n}", high, low))
	must.NoError(t, h2.RecoverTask(handle))
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
	must.NoError(t, h2.StopTask(running.ID, time.Second, "SIGKILL"))
	must.NoError(t, h2.DestroyTask(running.ID, true))
}

// Disk pressure and gc.image_delay: images whose delay runs go only after
// every other unused image, and an image warmed by a pull_only task stays
// for its delay, however long ago it was last used. The disk holds w
// (warmed first), x (run by a task, destroyed: its delay runs) and y
// (pulled later by another client of containerd); each of two pulls takes
// it past gc.disk_high and one removal brings it back below gc.disk_low.
// The first removes y, not the older x; the second x, not the older w.
func TestDiskPressureWarmAndDelay(t *testing.T) {
	cd, root := testbed.StartContainerdOnLoopFS(t, 256)
	testbed.LeakCheck(t, cd)
	b := &bed{cd: cd}
	reg := testbed.StartRegistry(t)
	ctx, cancel := context.WithTimeout(cd.Context(), 3*time.Minute)
	defer cancel()
	refs, err := testbed.PushFillers(ctx, reg, "delay", []string{"size", "w", "x", "y", "n1", "n2"}, 16<<20, time.Now().UnixNano())
	must.NoError(t, err)
	present := func(n string) bool {
		_, err := cd.Client.ImageService().Get(ctx, refs[n])
		return err == nil
	}

	// one image's share of the disk, measured
	base := usedPercent(t, root)
	must.NoError(t, testbed.PullUnpacked(ctx, cd, refs["size"]))
	s := usedPercent(t, root) - base
	must.NoError(t, cd.Client.ImageService().Delete(ctx, refs["size"], images.SynchronousDelete()))
	waitFor(t, 10*time.Second, "its space back", func() bool { return usedPercent(t, root) < base+s/8 })
	fill := base + 3*s
	high, low := fill+s/2, fill+s/4
	t.Logf("disk %.1f%% used; one image %.1f%%; watermarks %.1f%% / %.1f%%", base, s, high, low)
	h := b.harness(t, fmt.Sprintf("gc {\n disk_high = \"%.2f%%\"\n disk_low = \"%.2f%%\"\n disk_check_interval = \"1h\"\n image_delay = \"1h\"\n}", high, low))

	warm := newTask(t, rawTaskConfig{Image: refs["w"], PullOnly: true})
	startExitsZero(t, h, warm, time.Minute)
	must.NoError(t, h.DestroyTask(warm.ID, true))
	time.Sleep(1100 * time.Millisecond)
	run := func(n string) {
		task := newTask(t, rawTaskConfig{Image: refs[n], Command: "true"})
		startExitsZero(t, h, task, time.Minute)
		must.NoError(t, h.DestroyTask(task.ID, true))
	}
	run("x")
	time.Sleep(1100 * time.Millisecond)
	must.NoError(t, testbed.PullUnpacked(ctx, cd, refs["y"]))

	run("n1")
	waitFor(t, time.Minute, "y to go", func() bool { return !present("y") })
	waitFor(t, 10*time.Second, "the disk at or below the low watermark", func() bool { return usedPercent(t, root) <= low })
	for _, n := range []string{"w", "x", "n1"} {
		must.True(t, present(n), must.Sprintf("%s was removed", n))
	}
	run("n2")
	waitFor(t, time.Minute, "x to go", func() bool { return !present("x") })
	waitFor(t, 10*time.Second, "the disk at or below the low watermark", func() bool { return usedPercent(t, root) <= low })
	for _, n := range []string{"w", "n1", "n2"} {
		must.True(t, present(n), must.Sprintf("%s was removed", n))
	}
}
