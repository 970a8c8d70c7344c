//go:build bench

package bench

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/shoenig/test/must"
)

// userNSSleeper is the start figures' task with a userns_mode.
func userNSSleeper(mode string) func() map[string]any {
	return func() map[string]any {
		c := sleeper(busyboxRef)
		c["userns_mode"] = mode
		return c
	}
}

// figureUserNSStart: StartTask to running with userns_mode = "auto" (a
// range reserved, the image's layers and Nomad's directories mounted
// idmapped) against the same start in the host's user namespace,
// interleaved.
func (b *bed) figureUserNSStart(runs int) Row {
	auto := &startFigure{b: b, config: userNSSleeper("auto")}
	host := &startFigure{b: b, config: userNSSleeper("host")}
	as, hs := interleave(runs, 2, auto.driverRun, host.driverRun)
	base := Summarize(hs)
	return Row{Name: "start, userns_mode auto", Unit: "ms", Driver: Summarize(as), Baseline: &base,
		BaselineName: "userns_mode host", Target: Target{TargetRatio, 1.1}}
}

// figureUserNSDisk: what the snapshotter's disk use grows by for each
// running "auto" task past the first, against the whole use with one such
// task (the image's layers and its container): each task's range is
// another mapping of the same layers, so a task adds its own empty upper
// directory only, where a chowned copy of the image would add the image.
func (b *bed) figureUserNSDisk(n int) Row {
	fig := &startFigure{b: b, config: userNSSleeper("auto")}
	var started []*task
	defer func() {
		for _, tk := range started {
			b.destroyDriver(tk)
		}
	}()
	var one, all float64
	for i := range n {
		tk := fig.newTask()
		_, _, err := b.startDriver(tk)
		must.NoError(b.t, err)
		started = append(started, tk)
		if i == 0 {
			one = b.snapshotKiB()
		}
	}
	all = b.snapshotKiB()
	perTask := Summarize([]float64{(all - one) / float64(n-1)})
	whole := Summarize([]float64{one})
	return Row{Name: fmt.Sprintf("disk per extra auto task (%d tasks)", n), Unit: "KiB", Driver: perTask, Baseline: &whole,
		BaselineName: "image + one task", Target: Target{TargetRatio, 0.1}}
}

// snapshotKiB is the disk use of every snapshot of the overlayfs
// snapshotter, in KiB.
func (b *bed) snapshotKiB() float64 {
	ctx, cancel := context.WithTimeout(b.cd.Context(), callTimeout)
	defer cancel()
	sn := b.cd.Client.SnapshotService("overlayfs")
	var total int64
	must.NoError(b.t, sn.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
		u, err := sn.Usage(ctx, info.Name)
		if err != nil {
			return err
		}
		total += u.Size
		return nil
	}))
	return float64(total) / 1024
}
