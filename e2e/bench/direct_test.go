//go:build bench

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	gocni "github.com/containerd/go-cni"
	"github.com/hashicorp/nomad/plugins/drivers"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/shoenig/test/must"
	"golang.org/x/sys/unix"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// template is a container the driver made: its spec, runtime, labels and
// the files it wrote into the task directory, from which the baseline makes
// the same container for another allocation.
type template struct {
	task    *task  // the driver's, removed since
	spec    []byte // OCI spec, JSON
	runtime string
	labels  map[string]string
	files   map[string][]byte // bind-mounted files in the task dir, by path relative to it
	ports   []gocni.PortMapping
}

// captureTemplate reads what the driver made for tk (started and running).
func (b *bed) captureTemplate(tk *task, handle *drivers.TaskHandle) *template {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.cd.Context(), time.Minute)
	defer cancel()
	c, err := b.cd.Client.LoadContainer(ctx, tk.containerID())
	must.NoError(b.t, err)
	info, err := c.Info(ctx)
	must.NoError(b.t, err)
	spec, err := c.Spec(ctx)
	must.NoError(b.t, err)
	data, err := json.Marshal(spec)
	must.NoError(b.t, err)
	tmpl := &template{task: tk, spec: data, runtime: info.Runtime.Name, labels: info.Labels, files: map[string][]byte{}}
	for _, m := range spec.Mounts {
		rel, err := filepath.Rel(tk.cfg.TaskDir().Dir, m.Source)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		if st, err := os.Stat(m.Source); err == nil && st.Mode().IsRegular() {
			tmpl.files[rel], err = os.ReadFile(m.Source)
			must.NoError(b.t, err)
		}
	}
	var st driver.TaskState
	must.NoError(b.t, handle.GetDriverState(&st))
	if st.Network != nil {
		tmpl.ports = st.Network.Ports
	}
	return tmpl
}

// specFor is the template's spec for tk, in netns when it is not "", with
// the driver's shim group annotation or without it.
func (tm *template) specFor(tk *task, netnsPath string, grouped bool) (*oci.Spec, map[string]string) {
	data := tm.spec
	for _, r := range tm.replacements(tk) {
		data = bytes.ReplaceAll(data, []byte(r[0]), []byte(r[1]))
	}
	var spec oci.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		panic(err)
	}
	if netnsPath != "" {
		for i, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				spec.Linux.Namespaces[i].Path = netnsPath
			}
		}
	}
	if !grouped {
		delete(spec.Annotations, executor.ShimGroupAnnotation)
	}
	labels := map[string]string{}
	for k, v := range tm.labels {
		for _, r := range tm.replacements(tk) {
			v = strings.ReplaceAll(v, r[0], r[1])
		}
		labels[k] = v
	}
	return &spec, labels
}

// replacements turn the template's task directory, container ID and
// allocation ID into tk's, in that order.
func (tm *template) replacements(tk *task) [][2]string {
	return [][2]string{
		{tm.task.cfg.TaskDir().Dir, tk.cfg.TaskDir().Dir},
		{tm.task.containerID(), tk.containerID()},
		{tm.task.cfg.AllocID, tk.cfg.AllocID},
	}
}

// direct starts containers the way a program using the containerd client
// would (`ctr run` makes the same calls): image lookup, container with a
// new snapshot and a given spec, task with the log fifos, start.
type direct struct {
	cl  *client.Client
	cni gocni.CNI // the driver's built-in bridge network, loaded once
	dir string    // where its network namespaces go
}

func (b *bed) newDirect() *direct {
	b.t.Helper()
	cl, err := client.New(b.cd.Address, client.WithDefaultNamespace(b.cd.Namespace))
	must.NoError(b.t, err)
	b.t.Cleanup(func() { cl.Close() })
	conf, err := network.DefaultConflist(b.cni.Bridge, b.cni.Subnet)
	must.NoError(b.t, err)
	c, err := gocni.New(gocni.WithPluginDir([]string{b.cni.BinDir}), gocni.WithMinNetworkCount(2))
	must.NoError(b.t, err)
	must.NoError(b.t, c.Load(gocni.WithConfListBytes(conf), gocni.WithLoNetwork))
	return &direct{cl: cl, cni: c, dir: b.netnsDir}
}

// directTask is a container the baseline started.
type directTask struct {
	id        string
	container client.Container
	task      client.Task
	ns        string // netns path
	ports     []gocni.PortMapping
}

// startOpts say how the baseline starts a task.
type startOpts struct {
	image   string
	network bool // a netns on the bridge network with the template's ports (go-cni ADD)
	grouped bool // keep the shim group annotation
}

// start makes tk's container from the template and starts it. The spec is
// prepared before began; what follows is what the figure times.
func (d *direct) start(ctx context.Context, tm *template, tk *task, o startOpts) (_ *directTask, took time.Duration, err error) {
	id := tk.containerID()
	spec, labels := tm.specFor(tk, "", o.grouped)
	dt := &directTask{id: id}
	defer func() {
		if err != nil {
			_ = d.remove(context.WithoutCancel(ctx), dt)
		}
	}()
	began := time.Now()
	if o.network {
		if dt.ns, err = newNetNS(d.dir, id); err != nil {
			return nil, 0, err
		}
		dt.ports = tm.ports
		if _, err := d.cni.Setup(ctx, id, dt.ns, gocni.WithCapabilityPortMap(dt.ports)); err != nil {
			return nil, 0, fmt.Errorf("failed to run CNI ADD: %w", err)
		}
		spec, labels = tm.specFor(tk, dt.ns, o.grouped)
	}
	for rel, data := range tm.files {
		if err := os.WriteFile(filepath.Join(tk.cfg.TaskDir().Dir, rel), data, 0o644); err != nil {
			return nil, 0, err
		}
	}
	img, err := d.cl.GetImage(ctx, o.image)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to get image: %w", err)
	}
	dt.container, err = d.cl.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithSnapshotter("overlayfs"),
		client.WithNewSnapshot(id, img),
		client.WithRuntime(tm.runtime, nil),
		client.WithContainerLabels(labels),
		client.WithSpec(spec),
	)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to create container: %w", err)
	}
	dt.task, err = dt.container.NewTask(ctx, func(string) (cio.IO, error) {
		return &staticIO{cio.Config{Stdout: tk.cfg.StdoutPath, Stderr: tk.cfg.StderrPath}}, nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("failed to create task: %w", err)
	}
	if err := dt.task.Start(ctx); err != nil {
		return nil, 0, fmt.Errorf("failed to start task: %w", err)
	}
	return dt, time.Since(began), nil
}

// remove kills and deletes what start made.
func (d *direct) remove(ctx context.Context, dt *directTask) error {
	var errs []error
	if dt.task != nil {
		if _, err := dt.task.Delete(ctx, client.WithProcessKill); err != nil {
			errs = append(errs, err)
		}
	}
	if dt.container != nil {
		if err := dt.container.Delete(ctx, client.WithSnapshotCleanup); err != nil {
			errs = append(errs, err)
		}
	}
	if dt.ns != "" {
		if err := d.cni.Remove(ctx, dt.id, dt.ns, gocni.WithCapabilityPortMap(dt.ports)); err != nil {
			errs = append(errs, err)
		}
		if err := removeNetNS(dt.ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("failed to remove %s: %v", dt.id, errs)
	}
	return nil
}

// staticIO hands the shim the log fifo paths, as the driver does.
type staticIO struct{ config cio.Config }

func (s *staticIO) Config() cio.Config { return s.config }
func (s *staticIO) Cancel()            {}
func (s *staticIO) Wait()              {}
func (s *staticIO) Close() error       { return nil }

// newNetNS makes a network namespace and binds it at dir/bench-<id>, as
// ip netns add does.
func newNetNS(dir, id string) (string, error) {
	path := filepath.Join(dir, "bench-"+id)
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		return "", fmt.Errorf("failed to create netns file: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		// the thread stays in the new namespace and ends with the goroutine
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("failed to unshare: %w", err)
			return
		}
		errc <- unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), path, "none", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("failed to create netns: %w", err)
	}
	return path, nil
}

func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("failed to unmount netns %s: %w", path, err)
	}
	return os.Remove(path)
}
