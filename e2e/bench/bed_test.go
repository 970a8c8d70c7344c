//go:build bench

package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	"github.com/shoenig/test/must"
	"github.com/zclconf/go-cty/cty"
	ctymsgpack "github.com/zclconf/go-cty/cty/msgpack"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// busyboxRef is imported into containerd before the run: the cached image
// of the start figures.
const busyboxRef = "docker.io/library/busybox:bench"

// bed is the hermetic containerd, the driver behind Nomad's plugin harness
// (gRPC over a unix socket, as Nomad talks to a plugin) and a CNI network,
// shared by every figure of the run.
type bed struct {
	t         *testing.T
	cd        *testbed.Containerd
	h         *testbed.Harness
	cni       *testbed.CNINet
	netnsDir  string
	allocRoot string // Nomad's client alloc_dir: <allocRoot>/<alloc id>
	logger    hclog.InterceptLogger
	events    *eventLog
	taskSpec  *hclspec.Spec
}

func newBed(t *testing.T) *bed {
	t.Helper()
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc", "ctr", "docker-registry", "iptables", "ip")
	// the harness logs at trace level to stderr unless told otherwise
	t.Setenv("NOMAD_TEST_LOG_LEVEL", "ERROR")
	must.NoError(t, os.MkdirAll(outDir(), 0o755))

	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	testbed.ImportBusybox(t, cd, busyboxRef)
	cni := testbed.NewCNINet(t)
	b := &bed{t: t, cd: cd, cni: cni, netnsDir: t.TempDir(), allocRoot: t.TempDir()}
	testbed.NetLeakCheck(t, cni.Scope("", b.netnsDir))

	logFile, err := os.Create(filepath.Join(outDir(), "driver.log"))
	must.NoError(t, err)
	t.Cleanup(func() { logFile.Close() })
	b.logger = hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "bench", Level: logLevel(), Output: logFile})
	b.serve(map[string]any{
		"address": cd.Address,
		// images stay: the cold pull figure removes its own
		"gc": map[string]any{"image": false},
		"cni": map[string]any{"bin_dir": cni.BinDir, "conf_dir": cni.ConfDir, "bridge_name": cni.Bridge,
			"subnet": cni.Subnet, "netns_dir": b.netnsDir},
	})
	return b
}

// logLevel is the driver's log level: BENCH_LOG_LEVEL, else info.
func logLevel() hclog.Level {
	if l := os.Getenv("BENCH_LOG_LEVEL"); l != "" {
		return hclog.LevelFromString(l)
	}
	return hclog.Info
}

// serve starts a driver logging to b.logger behind the harness, with the
// plugin config config.
func (b *bed) serve(config map[string]any) {
	d := driver.New(b.logger)
	b.h = testbed.NewHarness(b.t, d)
	b.t.Cleanup(d.Shutdown)
	cfg := b.encode(mustSchema(b.h.ConfigSchema()), config)
	data, err := ctymsgpack.Marshal(cfg, cfg.Type())
	must.NoError(b.t, err)
	must.NoError(b.t, b.h.SetConfig(&base.Config{PluginConfig: data}))
	b.taskSpec = mustSchema(b.h.TaskConfigSchema())
	b.events = collectEvents(b.t, b.h)
}

// outDir holds results.json, results.txt, the CPU profile and driver.log.
func outDir() string { return filepath.Join(testbed.RepoRoot(), ".work", "bench") }

func mustSchema(s *hclspec.Spec, err error) *hclspec.Spec {
	if err != nil {
		panic(err)
	}
	return s
}

// encode turns a config, in the shape the job parser hands Nomad's client
// (maps, lists), into the value Nomad decodes with the plugin's schema.
func (b *bed) encode(spec *hclspec.Spec, config map[string]any) cty.Value {
	b.t.Helper()
	dec, diags := hclspecutils.Convert(spec)
	must.False(b.t, diags.HasErrors(), must.Sprint(diags))
	val, diags, errs := hclutils.ParseHclInterface(config, dec, nil)
	must.SliceEmpty(b.t, errs)
	must.False(b.t, diags.HasErrors(), must.Sprint(diags))
	return val
}

// task is one Nomad task with its allocation directory and, when the
// driver does not collect the logs itself, its log fifos read by a logmon
// as on a Nomad client.
type task struct {
	cfg  *drivers.TaskConfig
	dirs *testbed.TaskDirs
}

// containerID is the driver's container ID of the task.
func (tk *task) containerID() string { return tk.cfg.Name + "-" + tk.cfg.AllocID }

// newTask makes a task named name in allocation allocID ("" = a new one)
// running config, with 128 MiB of memory and the given Nomad ports.
func (b *bed) newTask(allocID, name string, config map[string]any, ports ...structs.AllocatedPortMapping) *task {
	b.t.Helper()
	if allocID == "" {
		allocID = uuid.Generate()
	}
	cfg := &drivers.TaskConfig{
		ID:            allocID + "/" + name,
		AllocID:       allocID,
		Name:          name,
		JobName:       "bench",
		JobID:         "bench",
		TaskGroupName: "group",
		Namespace:     "default",
		Resources: &drivers.Resources{
			NomadResources: &structs.AllocatedTaskResources{Memory: structs.AllocatedMemoryResources{MemoryMB: 128}},
			LinuxResources: &drivers.LinuxResources{CPUShares: 100, MemoryLimitBytes: 128 << 20},
		},
	}
	if len(ports) > 0 {
		ap := structs.AllocatedPorts(ports)
		cfg.Resources.Ports = &ap
	}
	must.NoError(b.t, cfg.EncodeDriverConfig(b.encode(b.taskSpec, config)))

	return &task{cfg: cfg, dirs: testbed.PrepareTask(b.t, b.logger, b.allocRoot, cfg, !b.h.CollectsLogs())}
}

// cleanup stops the task's logmon and removes its allocation directory.
func (tk *task) cleanup() {
	tk.dirs.Cleanup()
}

// sleeper is a long-running task on the host network: the figures other
// than the bridge start measure no network setup (the driver's default is
// its bridge network), and their baselines start in the host's namespace.
func sleeper(image string) map[string]any {
	return map[string]any{"image": image, "command": "sleep", "args": []string{"3600"}, "network_mode": "host"}
}

// startDriver starts tk through the harness and returns how long StartTask took.
func (b *bed) startDriver(tk *task) (time.Duration, *drivers.TaskHandle, error) {
	began := time.Now()
	handle, _, err := b.h.StartTask(tk.cfg)
	return time.Since(began), handle, err
}

// destroyDriver force-destroys a task the driver started and cleans it up.
func (b *bed) destroyDriver(tk *task) {
	b.t.Helper()
	must.NoError(b.t, b.h.DestroyTask(tk.cfg.ID, true))
	tk.cleanup()
}

// eventLog keeps the driver's task events, by task ID.
type eventLog struct {
	mu      sync.Mutex
	byTask  map[string][]*drivers.TaskEvent
	changed chan struct{} // closed and replaced on every event
}

func collectEvents(t *testing.T, h *testbed.Harness) *eventLog {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := h.TaskEvents(ctx)
	must.NoError(t, err)
	l := &eventLog{byTask: map[string][]*drivers.TaskEvent{}, changed: make(chan struct{})}
	go func() {
		for ev := range ch {
			l.mu.Lock()
			l.byTask[ev.TaskID] = append(l.byTask[ev.TaskID], ev)
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	return l
}

// await returns the first event of taskID whose message starts with prefix,
// waiting up to timeout for it.
func (l *eventLog) await(taskID, prefix string, timeout time.Duration) (*drivers.TaskEvent, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, ev := range l.byTask[taskID] {
			if len(ev.Message) >= len(prefix) && ev.Message[:len(prefix)] == prefix {
				l.mu.Unlock()
				return ev, nil
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("no event %q for task %s within %s", prefix, taskID, timeout)
		}
	}
}

// sideBed is a driver behind the harness on cd, apart from the run's bed,
// with the plugin config config (on host networking by default), logging
// at info (BENCH_LOG_LEVEL) to .work/bench/driver-<name>.log and, as JSON,
// to sink.
func sideBed(t *testing.T, cd *testbed.Containerd, name string, config map[string]any, sink io.Writer) *bed {
	logFile, err := os.Create(filepath.Join(outDir(), "driver-"+name+".log"))
	must.NoError(t, err)
	t.Cleanup(func() { logFile.Close() })
	logger := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "bench", Level: logLevel(), Output: logFile})
	if sink != nil {
		logger.RegisterSink(hclog.NewSinkAdapter(&hclog.LoggerOptions{Level: logLevel(), Output: sink, JSONFormat: true}))
	}
	b := &bed{t: t, cd: cd, allocRoot: t.TempDir(), logger: logger}
	full := map[string]any{"address": cd.Address, "default_network_mode": "host"}
	for k, v := range config {
		full[k] = v
	}
	b.serve(full)
	return b
}
