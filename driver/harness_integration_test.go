//go:build integration

package driver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// testImage is imported into the hermetic containerd, so starts find it
// locally and need no registry.
const testImage = "docker.io/library/busybox:test"

// bed is one hermetic containerd shared by the tests of a run.
type bed struct {
	cd *testbed.Containerd
}

func newBed(t *testing.T) *bed {
	t.Helper()
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc")
	cd := testbed.StartContainerd(t)
	testbed.ImportBusybox(t, cd, testImage)
	return &bed{cd: cd}
}

// newCheckedBed is newBed with a check that the test leaves nothing behind
// in it.
func newCheckedBed(t *testing.T) *bed {
	t.Helper()
	b := newBed(t)
	testbed.LeakCheck(t, b.cd)
	return b
}

// harness starts the driver behind the plugin harness with the given extra
// plugin config lines. A config without a cni block runs its tasks on the
// host network, as it has no CNI network for the default bridge.
func (b *bed) harness(t *testing.T, pluginHCL string) *testbed.Harness {
	t.Helper()
	d := New(hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testbed.TestLog(t)}))
	h := testbed.NewHarness(t, d)
	b.setConfig(t, h, pluginHCL)
	t.Cleanup(d.Shutdown)
	return h
}

// setConfig gives the driver behind h the plugin config of harness.
func (b *bed) setConfig(t *testing.T, h *testbed.Harness, pluginHCL string) {
	t.Helper()
	if !strings.Contains(pluginHCL, "cni {") && !strings.Contains(pluginHCL, "default_network_mode") {
		pluginHCL = "default_network_mode = \"host\"\n" + pluginHCL
	}
	raw := decodePluginHCL(t, "address = \""+b.cd.Address+"\"\n"+pluginHCL)
	var data []byte
	must.NoError(t, base.MsgPackEncode(&data, raw))
	must.NoError(t, h.SetConfig(&base.Config{PluginConfig: data}))
}

// newTask makes a task config for raw with 128 MiB of memory.
func newTask(t *testing.T, raw rawTaskConfig) *drivers.TaskConfig {
	t.Helper()
	if raw.Image == "" {
		raw.Image = testImage
	}
	task := &drivers.TaskConfig{
		ID:            uuid.Generate(),
		AllocID:       uuid.Generate(),
		Name:          "web",
		JobName:       "job",
		JobID:         "job",
		TaskGroupName: "group",
		Namespace:     "default",
		Resources: &drivers.Resources{
			NomadResources: &structs.AllocatedTaskResources{Memory: structs.AllocatedMemoryResources{MemoryMB: 128}},
			LinuxResources: &drivers.LinuxResources{CPUShares: 100, MemoryLimitBytes: 128 * mib},
		},
	}
	must.NoError(t, task.EncodeConcreteDriverConfig(&raw))
	return task
}

func sh(script string) rawTaskConfig {
	return rawTaskConfig{Command: "sh", Args: []string{"-c", script}}
}

// onHost puts a task on the host network instead of the plugin's default,
// for tests whose network checks count only the other tasks' networks.
func onHost(raw rawTaskConfig) rawTaskConfig {
	raw.NetworkMode = "host"
	return raw
}

// start runs task under h with its alloc dir and log fifos; it registers
// a forced destroy for cleanup.
func start(t *testing.T, h *testbed.Harness, task *drivers.TaskConfig) *drivers.TaskHandle {
	t.Helper()
	cleanup := h.MkAllocDir(task, true)
	t.Cleanup(cleanup)
	handle, _, err := h.StartTask(task)
	must.NoError(t, err)
	// the driver itself, not the harness client: another task's alloc dir
	// cleanup closes the client first
	impl := h.Impl()
	t.Cleanup(func() { _ = impl.DestroyTask(task.ID, true) })
	return handle
}

// startExitsZero starts task under h and checks that it exits 0 within
// timeout.
func startExitsZero(t *testing.T, h *testbed.Harness, task *drivers.TaskConfig, timeout time.Duration) {
	t.Helper()
	start(t, h, task)
	must.Eq(t, 0, wait(t, h, task.ID, timeout).ExitCode)
}

// pushBusyboxWith pushes the busybox image with layer on top to reg as
// repoTag.
func pushBusyboxWith(t *testing.T, reg *testbed.Registry, layer testbed.Layer, repoTag string) {
	t.Helper()
	base, err := testbed.BuildBusybox()
	must.NoError(t, err)
	img, err := base.Derive(nil, layer)
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = reg.Push(ctx, img, repoTag)
	must.NoError(t, err)
}

// startBefore runs StartTask and returns its error; it fails the test with
// late when StartTask has not returned within deadline.
func startBefore(t *testing.T, h *testbed.Harness, task *drivers.TaskConfig, deadline time.Duration, late string) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, _, err := h.StartTask(task)
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(deadline):
		t.Fatal(late)
		return nil
	}
}

// wait returns the task's exit, failing after timeout.
func wait(t *testing.T, h *testbed.Harness, taskID string, timeout time.Duration) *drivers.ExitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ch, err := h.WaitTask(ctx, taskID)
	must.NoError(t, err)
	select {
	case res, ok := <-ch:
		must.True(t, ok, must.Sprint("wait channel closed without a result"))
		return res
	case <-ctx.Done():
		t.Fatalf("task %s did not exit within %s", taskID, timeout)
		return nil
	}
}

// logs reads the task's stdout or stderr as written by Nomad's logmon.
func logs(t *testing.T, task *drivers.TaskConfig, stream string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(task.TaskDir().LogDir, task.Name+"."+stream+".0"))
	must.NoError(t, err)
	return string(b)
}

// firstFingerprint returns the first fingerprint d sends under ctx.
func firstFingerprint(ctx context.Context, t *testing.T, d interface {
	Fingerprint(context.Context) (<-chan *drivers.Fingerprint, error)
}) *drivers.Fingerprint {
	t.Helper()
	ch, err := d.Fingerprint(ctx)
	must.NoError(t, err)
	return <-ch
}

// startReady starts a task running script under a harness of its own and
// waits for the task to print "ready".
func startReady(t *testing.T, b *bed, script string) (*testbed.Harness, *drivers.TaskConfig) {
	t.Helper()
	h := b.harness(t, "")
	task := newTask(t, sh(script))
	start(t, h, task)
	eventually(t, "ready", func() bool { return strings.Contains(logs(t, task, "stdout"), "ready") })
	return h, task
}

// stopTook stops the task with signal and timeout and returns how long
// StopTask took.
func stopTook(t *testing.T, h *testbed.Harness, taskID string, timeout time.Duration, signal string) time.Duration {
	t.Helper()
	began := time.Now()
	must.NoError(t, h.StopTask(taskID, timeout, signal))
	return time.Since(began)
}

// eventually waits for cond, for log files written by another process.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testbed.Eventually(t, 10*time.Second, what, cond)
}

// waitFor waits up to timeout for cond.
var waitFor = testbed.Eventually

// containerExists asks containerd directly whether the container exists.
func (b *bed) containerExists(t *testing.T, id string) bool {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), b.cd.Namespace)
	cs, err := b.cd.Client.Containers(ctx, "id=="+id)
	must.NoError(t, err)
	return len(cs) > 0
}

// snapshotExists reports whether a snapshot with key id exists.
func (b *bed) snapshotExists(t *testing.T, id string) bool {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), b.cd.Namespace)
	_, err := b.cd.Client.SnapshotService("overlayfs").Stat(ctx, id)
	return err == nil
}

// nothingLeft checks that a refused task left no container, snapshot or
// lease.
func (b *bed) nothingLeft(t *testing.T, task *drivers.TaskConfig) {
	t.Helper()
	id := containerID(task.Name, task.AllocID)
	must.False(t, b.containerExists(t, id))
	must.False(t, b.snapshotExists(t, id))
	ctx := namespaces.WithNamespace(context.Background(), b.cd.Namespace)
	ls, err := b.cd.Client.LeasesService().List(ctx)
	must.NoError(t, err)
	must.SliceEmpty(t, ls)
}
