//go:build bench

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// The disk-pressure figure's filesystem and images: each round fills the
// disk with diskFill unused images, and one more pull takes it past high.
const (
	diskMiB      = 192
	diskImageMiB = 8
	diskFill     = 3
)

// figureDiskGC measures disk-pressure GC: a loop filesystem of diskMiB
// holds containerd's root; each round fills it with diskFill unused images
// (pulled and unpacked by the containerd client, as any other client of
// the node would), oldest first, and then a pull_only task pulls one more,
// which takes the disk past gc.disk_high. The watermarks are set from the
// first fill so that the pull goes half an image past high and low is half
// an image below the fill: the pass the pull starts must remove the two
// least recently used images, leave the disk at or below low, and leave the
// running task (busybox) and its image untouched. The row is the pass's
// duration, as the driver logs it.
func figureDiskGC(t *testing.T, rounds int) (Row, *DiskGC) {
	cd, root := testbed.StartContainerdOnLoopFS(t, diskMiB)
	testbed.LeakCheck(t, cd)
	testbed.ImportBusybox(t, cd, busyboxRef)
	reg := testbed.StartRegistry(t)
	ctx, cancel := context.WithTimeout(cd.Context(), 10*time.Minute)
	defer cancel()
	fillers := []string{"a", "b", "c"}
	var names []string
	for r := range rounds {
		for _, n := range append(fillers, "next") {
			names = append(names, fmt.Sprint(n, r))
		}
	}
	refs, err := testbed.PushFillers(ctx, reg, "gc", names, diskImageMiB<<20, time.Now().UnixNano())
	must.NoError(t, err)
	used := func() float64 {
		u, err := testbed.UsedPercent(root)
		must.NoError(t, err)
		return u
	}
	fill := func(r int) {
		for _, n := range fillers {
			must.NoError(t, testbed.PullUnpacked(ctx, cd, refs[fmt.Sprint(n, r)]))
			time.Sleep(1100 * time.Millisecond) // distinct update times, whatever their resolution
		}
	}
	present := func(ref string) bool {
		_, err := cd.Client.ImageService().Get(ctx, ref)
		if errdefs.IsNotFound(err) {
			return false
		}
		must.NoError(t, err)
		return true
	}

	base := used()
	fill(0)
	filled := used()
	share := (filled - base) / diskFill
	fig := &DiskGC{FilesystemMiB: diskMiB, ImageMiB: diskImageMiB, High: filled + share/2, Low: filled - share/2}
	log := &testbed.SyncBuffer{}
	b := sideBed(t, cd, "gc", map[string]any{"gc": map[string]any{
		"disk_high": fmt.Sprintf("%.2f%%", fig.High), "disk_low": fmt.Sprintf("%.2f%%", fig.Low),
		"disk_check_interval": "1h", "image_delay": "1h", // the pull alone starts the pass
	}}, log)
	running := b.newTask("", "running", sleeper(busyboxRef))
	_, _, err = b.h.StartTask(running.cfg)
	must.NoError(t, err)
	defer b.destroyDriver(running)

	var took []float64
	for r := range rounds {
		if r > 0 {
			fill(r)
		}
		round := DiskGCRound{Filled: used()}
		next := b.newTask("", "warm", map[string]any{"image": refs[fmt.Sprint("next", r)], "pull_only": true})
		_, _, err := b.h.StartTask(next.cfg)
		must.NoError(t, err)
		ch, err := b.h.WaitTask(ctx, next.cfg.ID)
		must.NoError(t, err)
		must.Eq(t, 0, (<-ch).ExitCode)
		b.destroyDriver(next)
		var pass map[string]any
		must.True(t, testbed.Poll(time.Minute, 20*time.Millisecond, func() bool {
			pass = logLine(log.String(), "disk pressure check done", r)
			return pass != nil
		}), must.Sprint("no disk pressure pass logged:\n", log.String()))
		round.Before, _ = pass["disk_used_percent_before"].(float64)
		round.After = used()
		round.BelowLow = round.After <= fig.Low
		round.PassMS = pass["duration"].(float64) / float64(time.Millisecond)
		took = append(took, round.PassMS)
		for _, n := range fillers {
			if ref := refs[fmt.Sprint(n, r)]; !present(ref) {
				round.Removed = append(round.Removed, "gc/"+fmt.Sprint(n, r))
			}
		}
		round.RunningKept = present(busyboxRef) && taskRunning(ctx, cd, running.containerID())
		fig.Rounds = append(fig.Rounds, round)
		// what is left goes before the next fill, untimed
		for _, n := range append(fillers, "next") {
			err := cd.Client.ImageService().Delete(ctx, refs[fmt.Sprint(n, r)], images.SynchronousDelete())
			if !errdefs.IsNotFound(err) {
				must.NoError(t, err)
			}
		}
	}
	row := Row{Name: "disk-pressure GC pass after one pull past high", Unit: "ms", Driver: Summarize(took),
		Note: fmt.Sprintf("%d MiB loop filesystem, %d MiB images; every round below low after one pull and the running task kept: %t", diskMiB, diskImageMiB, fig.Met())}
	return row, fig
}

// logLine is the n-th (from 0) JSON log line with message msg in log, or
// nil when there are not that many.
func logLine(log, msg string, n int) map[string]any {
	for _, line := range strings.Split(log, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["@message"] != msg {
			continue
		}
		if n == 0 {
			return m
		}
		n--
	}
	return nil
}

// taskRunning reports whether the container id exists with its task running.
func taskRunning(ctx context.Context, cd *testbed.Containerd, id string) bool {
	ctx = namespaces.WithNamespace(ctx, cd.Namespace)
	c, err := cd.Client.LoadContainer(ctx, id)
	if err != nil {
		return false
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return false
	}
	st, err := task.Status(ctx)
	return err == nil && st.Status == client.Running
}
