//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/shoenig/test/must"
	ctymsgpack "github.com/zclconf/go-cty/cty/msgpack"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
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

// TestBenchLazy measures a cold start of a large eStargz image whose task
// reads a little of it: StartTask until the task has read one file and
// exited, with snapshotter stargz (lazy) and overlayfs (a full pull), then
// a second start of the same image with each.
func TestBenchLazy(t *testing.T) {
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc", "docker-registry", testbed.StargzBin)
	t.Setenv("NOMAD_TEST_LOG_LEVEL", "ERROR")
	must.NoError(t, os.MkdirAll(outDir(), 0o755))
	cd, _ := testbed.StartContainerdWithStargz(t)
	testbed.LeakCheck(t, cd)
	reg := testbed.StartRegistry(t)
	link := testbed.StartAccessLog(t, reg)

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
	// both pull across the same link, as from a registry on the network
	link.SetRate(lazyLinkRate)
	ref := link.Host + "/bench/lazy:1"
	var size int64
	for _, l := range img.Manifest.Layers {
		size += l.Size
	}

	run := func(snapshotter string) (cold, warm time.Duration) {
		b := lazyBed(t, cd, snapshotter)
		cfg := map[string]any{"image": ref, "command": "sh", "args": []string{"-c", "cat /data/f07 | wc -c"}, "network_mode": "host"}
		for i, d := range []*time.Duration{&cold, &warm} {
			tk := b.newTask("", fmt.Sprintf("lazy%d", i), cfg)
			began := time.Now()
			_, _, err := b.h.StartTask(tk.cfg)
			must.NoError(t, err)
			ch, err := b.h.WaitTask(context.Background(), tk.cfg.ID)
			must.NoError(t, err)
			res := <-ch
			*d = time.Since(began)
			must.Eq(t, 0, res.ExitCode)
			b.destroyDriver(tk)
		}
		// the next snapshotter starts cold: no image, no content
		ictx := namespaces.WithNamespace(context.Background(), cd.Namespace)
		must.NoError(t, cd.Client.ImageService().Delete(ictx, ref, images.SynchronousDelete()))
		return cold, warm
	}
	fullCold, fullWarm := run("overlayfs")
	lazyCold, lazyWarm := run("stargz")
	report := fmt.Sprintf("lazy pull, %d MB eStargz image across a %d Mbit/s link, task reads %d MiB (one run each)\n", size/1e6, int(lazyLinkRate*8/1e6), lazyFileSize>>20) +
		fmt.Sprintf("  cold start to exit: stargz %s, overlayfs %s (%.1fx faster)\n", lazyCold.Round(time.Millisecond), fullCold.Round(time.Millisecond), float64(fullCold)/float64(lazyCold)) +
		fmt.Sprintf("  second start:       stargz %s, overlayfs %s\n", lazyWarm.Round(time.Millisecond), fullWarm.Round(time.Millisecond))
	t.Log("\n" + report)
	must.NoError(t, os.WriteFile(filepath.Join(outDir(), "lazy.txt"), []byte(report), 0o644))
}

// lazyBed is a driver behind the harness on cd with the given snapshotter.
func lazyBed(t *testing.T, cd *testbed.Containerd, snapshotter string) *bed {
	logFile, err := os.Create(filepath.Join(outDir(), "driver-"+snapshotter+".log"))
	must.NoError(t, err)
	t.Cleanup(func() { logFile.Close() })
	b := &bed{t: t, cd: cd, allocRoot: t.TempDir(),
		logger: hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.Info, Output: logFile})}
	d := driver.New(b.logger)
	b.h = testbed.NewHarness(t, d)
	t.Cleanup(d.Shutdown)
	cfg := b.encode(mustSchema(b.h.ConfigSchema()), map[string]any{
		"address": cd.Address, "snapshotter": snapshotter, "default_network_mode": "host",
		"gc": map[string]any{"image": false},
	})
	data, err := ctymsgpack.Marshal(cfg, cfg.Type())
	must.NoError(t, err)
	must.NoError(t, b.h.SetConfig(&base.Config{PluginConfig: data}))
	b.taskSpec = mustSchema(b.h.TaskConfigSchema())
	return b
}
