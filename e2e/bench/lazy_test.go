//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// lazyFiles and lazyFileSize make the lazy figure's image: busybox and a
// layer of lazyFiles incompressible files (about 300 MB), all eStargz; its
// task reads one file (10 MiB) and prints.
const (
	lazyFiles    = 30
	lazyFileSize = 10 << 20
	// lazyLinkRate is the registry link's speed: 100 Mbit/s.
	lazyLinkRate = 100_000_000 / 8
)

// lazyStargzConfig is added to the test bed's snapshotter config (and
// after it BENCH_STARGZ_CONFIG, with \n for newlines, such as
// "[fuse]\npassthrough = true"): a resolved layer is kept for a second
// for other resolves (instead of two minutes), so that every cold start of
// the figure fetches from the registry again.
const lazyStargzConfig = "resolve_result_entry_ttl_sec = 1\n"

// figureLazy measures a cold start of a large eStargz image whose task
// reads a little of it: StartTask until the task has read one file and
// exited, with snapshotter stargz (lazy) and overlayfs (a full pull), then
// a second start of the same image with each; runs rounds, the two
// snapshotters taking turns at going first. Rows: cold start (target: stargz
// at least 5 times faster) and second start (target: stargz no slower).
func figureLazy(t *testing.T, runs int) []Row {
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc", "docker-registry", testbed.StargzBin)
	cd, _ := testbed.StartContainerdWithStargz(t, lazyStargzConfig, strings.ReplaceAll(os.Getenv("BENCH_STARGZ_CONFIG"), `\n`, "\n"))
	testbed.LeakCheck(t, cd)
	reg := testbed.StartRegistry(t)
	link := testbed.StartAccessLog(t, reg)
	ref, size := pushLazyImage(t, reg, link)
	// both pull across the same link, as from a registry on the network
	link.SetRate(lazyLinkRate)
	ctx, cancel := context.WithTimeout(cd.Context(), 10*time.Minute)
	defer cancel()

	cfg := map[string]any{"image": ref, "command": "sh", "args": []string{"-c", "cat /data/f07 | wc -c"}, "network_mode": "host"}
	beds := map[string]*bed{}
	fetched := map[string]int64{} // bytes from the registry, all cold starts
	run := func(snapshotter string) (cold, warm float64) {
		b := beds[snapshotter]
		if b == nil {
			b = sideBed(t, cd, snapshotter, map[string]any{"snapshotter": snapshotter, "gc": map[string]any{"image": false}}, nil)
			beds[snapshotter] = b
		}
		before := linkBytes(link)
		for i, d := range []*float64{&cold, &warm} {
			tk := b.newTask("", fmt.Sprintf("lazy%d", i), cfg)
			syscall.Sync() // no start pays for the writes of the pull before it
			began := time.Now()
			_, _, err := b.h.StartTask(tk.cfg)
			must.NoError(t, err)
			ch, err := b.h.WaitTask(context.Background(), tk.cfg.ID)
			must.NoError(t, err)
			res := <-ch
			*d = ms(time.Since(began))
			must.Eq(t, 0, res.ExitCode)
			b.destroyDriver(tk)
			if i == 0 {
				fetched[snapshotter] += linkBytes(link) - before
			}
		}
		// the next run starts cold: no image, no content, no snapshot (and
		// the snapshotter forgot the layers a second after resolving them)
		must.NoError(t, cd.Client.ImageService().Delete(ctx, ref, images.SynchronousDelete()))
		return cold, warm
	}
	var cold, warm [2][]float64 // stargz, overlayfs
	for r := range runs {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, k := range order {
			c, w := run([]string{"stargz", "overlayfs"}[k])
			cold[k], warm[k] = append(cold[k], c), append(warm[k], w)
		}
	}
	perRun := func(s string) float64 { return float64(fetched[s]) / float64(runs) / 1e6 }
	name := fmt.Sprintf("lazy: %d MB eStargz image, %d Mbit/s link, task reads %d MiB", size/1e6, int(lazyLinkRate*8/1e6), lazyFileSize>>20)
	fullCold, fullWarm := Summarize(cold[1]), Summarize(warm[1])
	rows := []Row{
		{Name: "cold start to exit, " + name, Unit: "s", Driver: Summarize(seconds(cold[0])), Baseline: ptr(Summarize(seconds(cold[1]))),
			BaselineName: "overlayfs, full pull", Target: Target{TargetRatio, 0.2},
			Note: fmt.Sprintf("stargz %.1fx faster; fetched per cold start: stargz %.1f MB, overlayfs %.1f MB", fullCold.Median/Summarize(cold[0]).Median, perRun("stargz"), perRun("overlayfs"))},
		{Name: "second start to exit, same image", Unit: "s", Driver: Summarize(seconds(warm[0])), Baseline: ptr(Summarize(seconds(warm[1]))),
			BaselineName: "overlayfs", Target: Target{TargetRatio, 1},
			Note: fmt.Sprintf("stargz %+.0f ms against overlayfs (medians)", Summarize(warm[0]).Median-fullWarm.Median)},
	}
	return rows
}

// pushLazyImage pushes the lazy figure's image to reg as bench/lazy:1 and
// returns its reference through link, reg's access log, and its size.
func pushLazyImage(t *testing.T, reg *testbed.Registry, link *testbed.AccessLog) (string, int64) {
	bb, err := testbed.BuildBusybox()
	must.NoError(t, err)
	var entries []testbed.Entry
	entries = append(entries, testbed.Dir("data", 0o755))
	for i := 0; i < lazyFiles; i++ {
		entries = append(entries, testbed.File(path.Join("data", fmt.Sprintf("f%02d", i)), 0o644, testbed.FillerBytes(lazyFileSize, int64(100+i))))
	}
	data, err := testbed.NewLayer(entries...)
	must.NoError(t, err)
	layers := append(bb.Layers(), data)
	for i, l := range layers {
		layers[i], err = testbed.EStargzLayer(l)
		must.NoError(t, err)
	}
	img, err := testbed.BuildImage(bb.Config.Config, layers...)
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, err = img.Push(ctx, reg.Host, "bench/lazy:1")
	must.NoError(t, err)
	var size int64
	for _, l := range img.Manifest.Layers {
		size += l.Size
	}
	return link.Host + "/bench/lazy:1", size
}

// linkBytes is every body byte the registry link has carried.
func linkBytes(link *testbed.AccessLog) int64 {
	var n int64
	for _, a := range link.All() {
		n += a.Bytes
	}
	return n
}

// seconds converts milliseconds to seconds.
func seconds(msecs []float64) []float64 {
	out := make([]float64, len(msecs))
	for i, m := range msecs {
		out[i] = m / 1000
	}
	return out
}

func ptr[T any](v T) *T { return &v }
