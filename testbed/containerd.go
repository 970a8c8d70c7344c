package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// Namespace is the containerd namespace the driver and the tests use.
const Namespace = "nomad"

// Containerd is a containerd daemon of our own: own root, state, socket and
// config.
type Containerd struct {
	Address   string // grpc socket
	Root      string
	State     string
	Namespace string
	Client    *client.Client
	PID       int

	dirs     []string // removed by Stop
	proc     *daemon
	launch   func() (*daemon, error) // starts the daemon with its config
	stopOnce sync.Once
	stopErr  error
}

// disabledPlugins are plugins the tests do not need; leaving them out keeps
// the start fast and quiet.
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.cri.v1.images",
	"io.containerd.cri.v1.runtime",
	"io.containerd.podsandbox.controller.v1.podsandbox",
	"io.containerd.nri.v1.nri",
	"io.containerd.internal.v1.tracing",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.blockfile",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.erofs",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.differ.v1.erofs",
	"io.containerd.mount-handler.v1.erofs",
}

// ContainerdConfig is the containerd (config version 3) file for a daemon
// with the given root, state and socket address. The runc runtime is the
// default one (io.containerd.runc.v2 running `runc` from PATH), the default
// snapshotter overlayfs.
func ContainerdConfig(root, state, address string) string {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	var dis []string
	for _, p := range disabledPlugins {
		dis = append(dis, q(p))
	}
	return strings.Join([]string{
		"version = 3",
		"root = " + q(root),
		"state = " + q(state),
		"disabled_plugins = [" + strings.Join(dis, ", ") + "]",
		"",
		"[grpc]",
		"  address = " + q(address),
		"[ttrpc]",
		"  address = " + q(address+".ttrpc"),
		"[debug]",
		"  address = " + q(""),
		"  level = \"info\"",
		"[metrics]",
		"  address = " + q(""),
		"",
		`[plugins."io.containerd.internal.v1.opt"]`,
		"  path = " + q(filepath.Join(root, "opt")),
		`[plugins."io.containerd.image-verifier.v1.bindir"]`,
		"  bin_dir = " + q(filepath.Join(root, "image-verifiers")),
		"",
	}, "\n")
}

// LaunchContainerd starts a containerd and waits until it answers. Its root
// and state live in o.Dir (by default a new temp dir for the root and a short
// one under /run for socket and state); the socket goes to a short directory
// under /run when o.Dir would make its path too long (unix socket paths are
// limited to 108 bytes). Stop undoes everything; tests use StartContainerd.
func LaunchContainerd(o LaunchOptions) (*Containerd, error) {
	return LaunchContainerdWith(o, ContainerdOptions{})
}

// ContainerdOptions add to the config of a containerd.
type ContainerdOptions struct {
	// ProxySnapshotters are snapshotters served by other processes, by
	// name, with the address of their socket (a stargz snapshotter).
	ProxySnapshotters map[string]string
}

// config is co's part of the containerd config.
func (co ContainerdOptions) config() string {
	names := make([]string, 0, len(co.ProxySnapshotters))
	for name := range co.ProxySnapshotters {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "[proxy_plugins.%q]\n  type = \"snapshot\"\n  address = %q\n", name, co.ProxySnapshotters[name])
	}
	return b.String()
}

// LaunchContainerdWith is LaunchContainerd with co added to its config.
func LaunchContainerdWith(o LaunchOptions, co ContainerdOptions) (_ *Containerd, err error) {
	bin, err := LookBin("containerd")
	if err != nil {
		return nil, err
	}
	dir, owned, err := o.dir("ndc-containerd-")
	if err != nil {
		return nil, err
	}
	c := &Containerd{Namespace: Namespace, Root: filepath.Join(dir, "root")}
	if owned {
		c.dirs = append(c.dirs, dir)
	}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	run := dir
	if owned || len(filepath.Join(dir, "containerd.sock.ttrpc")) >= 100 {
		if run, err = os.MkdirTemp("/run", "ndc-test-"); err != nil {
			return nil, err
		}
		c.dirs = append(c.dirs, run)
		// traversable, as containerd keeps its own state dir: a task in a
		// user namespace of its own reaches its rootfs beneath it
		if err := os.Chmod(run, 0o711); err != nil {
			return nil, err
		}
	}
	c.Address, c.State = filepath.Join(run, "containerd.sock"), filepath.Join(run, "state")
	if !owned {
		c.State = filepath.Join(dir, "state")
	}
	cfg := filepath.Join(run, "config.toml")
	if err := os.WriteFile(cfg, []byte(ContainerdConfig(c.Root, c.State, c.Address)+co.config()), 0o644); err != nil {
		return nil, err
	}
	wrapDir := filepath.Join(run, "bin")
	if err := writeRuncWrapper(wrapDir, c.runcRoot()); err != nil {
		return nil, err
	}
	env := cleanEnv()
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = "PATH=" + wrapDir + ":" + strings.TrimPrefix(kv, "PATH=")
		}
	}
	c.launch = func() (*daemon, error) { return o.start(dir, "containerd", env, bin, "--config", cfg) }
	if err := c.StartDaemon(); err != nil {
		return nil, err
	}
	return c, nil
}

// StartDaemon starts the daemon (again, after StopDaemon) with the same
// config, root, state and socket, and waits until it answers; Client is then
// a new client of it.
func (c *Containerd) StartDaemon() (err error) {
	if c.proc, err = c.launch(); err != nil {
		return err
	}
	c.PID = c.proc.pid()
	if err := c.waitReady(30 * time.Second); err != nil {
		return fmt.Errorf("containerd did not come up: %w\n%s", err, c.proc.logTail(4096))
	}
	return nil
}

// StopDaemon stops the daemon alone, by its PID, with sig (SIGKILL after
// 10s): SIGTERM as an operator restarting containerd does (it removes its
// socket), SIGKILL as a crash (the socket stays, refusing connections).
// Shims and the tasks they run keep running; StartDaemon picks them up.
func (c *Containerd) StopDaemon(sig syscall.Signal) {
	if c.Client != nil {
		c.Client.Close()
		c.Client = nil
	}
	c.proc.stop(sig, 10*time.Second)
}

// DeleteTask SIGKILLs the task of container id and deletes it, behind the
// back of whoever runs it, as `ctr tasks kill -s SIGKILL` and `ctr tasks rm`
// do. ctx carries the namespace (Context).
func (c *Containerd) DeleteTask(ctx context.Context, id string) error {
	ctr, err := c.Client.LoadContainer(ctx, id)
	if err != nil {
		return err
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return err
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err = task.Delete(ctx)
	return err
}

// Restart is StopDaemon(SIGTERM) then StartDaemon.
func (c *Containerd) Restart() error {
	c.StopDaemon(syscall.SIGTERM)
	return c.StartDaemon()
}

func (c *Containerd) waitReady(timeout time.Duration) error {
	var last error
	exited := false
	ready := Poll(timeout, 50*time.Millisecond, func() bool {
		if c.proc.exited() {
			exited = true
			return true
		}
		if _, err := os.Stat(c.Address); err != nil {
			return false
		}
		cl, err := client.New(c.Address, client.WithDefaultNamespace(c.Namespace),
			client.WithTimeout(2*time.Second))
		if err != nil {
			last = err
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, err := cl.IsServing(ctx)
		cancel()
		if ok && err == nil {
			c.Client = cl
			return true
		}
		last = err
		cl.Close()
		return false
	})
	switch {
	case exited:
		return fmt.Errorf("containerd (pid %d) exited", c.PID)
	case ready:
		return nil
	}
	return fmt.Errorf("no answer on %s within %s: %v", c.Address, timeout, last)
}

// LogTail is the last n bytes of the daemon's log.
func (c *Containerd) LogTail(n int64) string {
	if c.proc == nil {
		return ""
	}
	return c.proc.logTail(n)
}

// Context is a background context in the daemon's namespace.
func (c *Containerd) Context() context.Context {
	return namespaces.WithNamespace(context.Background(), c.Namespace)
}

// sharedRuncRoot is where the runc shim keeps runc's state, for every
// containerd on the machine alike.
const sharedRuncRoot = "/run/containerd/runc"

// runcRoot is where runc keeps the state of this daemon's containers.
func (c *Containerd) runcRoot() string { return filepath.Join(c.State, "runc") }

// writeRuncWrapper puts a `runc` into dir that runs the real runc with its
// state under root instead of the shared sharedRuncRoot, so that daemons
// running side by side (tests of several checkouts) never see each other's
// containers. The shim finds it first in the daemon's PATH. The real runc
// is RuncBin's.
func writeRuncWrapper(dir, root string) error {
	real, err := RuncBin()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	script := fmt.Sprintf(`#!/bin/sh
# runc with its state in this containerd's own dir (written by testbed)
first=1
for a in "$@"; do
  [ "$first" = 1 ] && set -- && first=0
  case "$a" in
    %[1]s/*) a="%[2]s/${a#%[1]s/}" ;;
  esac
  set -- "$@" "$a"
done
exec %[3]s "$@"
`, sharedRuncRoot, root, real)
	return os.WriteFile(filepath.Join(dir, "runc"), []byte(script), 0o755)
}

// StartContainerd starts a hermetic containerd for the test (namespace
// "nomad") and stops it, with everything it left, when the test ends.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	Require(t, true, "containerd", "containerd-shim-runc-v2", "runc")
	c, err := LaunchContainerd(LaunchOptions{})
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	stopAtCleanup(t, "containerd", c)
	return c
}

func withNS(ctx context.Context, ns string) context.Context {
	return namespaces.WithNamespace(ctx, ns)
}
