package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Nomad is an agent (server and client in one process) of our own.
type Nomad struct {
	Addr   string // http://127.0.0.1:port
	Config NomadConfig
	Ports  NomadPorts
	Dir    string // config and log

	id       string
	bin      string
	opts     LaunchOptions
	ownDir   bool
	mu       sync.Mutex
	proc     *daemon
	stopOnce sync.Once
}

// Marker is an environment entry (NAME=VALUE) that tags the agent and
// everything it starts (plugins, logmon, executors), so that Stop finds them
// by PID even after a Kill.
func (n *Nomad) Marker() string { return "NDC_TESTBED_NOMAD=" + n.id }

// LaunchNomad starts an agent and waits until its node is ready and the
// containerd driver healthy. Its config, log, plugin dir and (unless
// cfg.DataDir says otherwise) data live in o.Dir, by default a new temp dir.
// Stop undoes it; tests use StartNomad.
func LaunchNomad(cfg NomadConfig, o LaunchOptions) (*Nomad, error) {
	var idb [3]byte
	_, _ = rand.Read(idb[:])
	return launchNomad(cfg, o, hex.EncodeToString(idb[:]))
}

// launchNomad is LaunchNomad for an agent id (a few hex digits: its node
// name and group bridge derive from it).
func launchNomad(cfg NomadConfig, o LaunchOptions, id string) (_ *Nomad, err error) {
	bin, err := LookBin("nomad")
	if err != nil {
		return nil, err
	}
	if cfg.PluginDir == "" {
		cfg.PluginDir = filepath.Join(RepoRoot(), "bin")
	}
	n := &Nomad{id: id, bin: bin, Config: cfg, opts: o}
	if n.Dir, n.ownDir, err = o.dir("ndc-nomad-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = n.Stop()
		}
	}()
	if n.Config.DataDir == "" {
		n.Config.DataDir = filepath.Join(n.Dir, "data")
	}
	if err := os.MkdirAll(filepath.Join(n.Config.DataDir, "cni"), 0o755); err != nil {
		return nil, err
	}
	if n.Ports, err = FreeNomadPorts(); err != nil {
		return nil, err
	}
	// the agent and the plugins it launches keep their temporary files
	// (go-plugin's sockets among them) in the agent's directory
	if err := os.MkdirAll(n.tmpDir(), 0o700); err != nil {
		return nil, err
	}
	plugins := filepath.Join(n.Dir, "plugins")
	if err := LinkPlugin(n.Config.PluginDir, plugins); err != nil {
		return nil, err
	}
	for _, p := range n.Config.Plugins {
		link := filepath.Join(plugins, filepath.Base(p))
		_ = os.Remove(link)
		if err := os.Symlink(p, link); err != nil {
			return nil, err
		}
	}
	n.Addr = fmt.Sprintf("http://127.0.0.1:%d", n.Ports.HTTP)
	for name, client := range map[string]bool{"agent.hcl": true, "bootstrap.hcl": false} {
		conf := nomadAgentConfig(n.Config, plugins, n.Ports, n.id, client)
		if err := os.WriteFile(filepath.Join(n.Dir, name), []byte(conf), 0o644); err != nil {
			return nil, err
		}
	}
	if err := n.start(); err != nil {
		return nil, err
	}
	return n, nil
}

// start runs the agent and waits until it is ready. On a fresh data dir the
// server first runs alone until its keyring exists: a client that registers
// before that is refused and retries only 15 to 30s later.
func (n *Nomad) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	switch n.Config.Role {
	case NomadServerOnly:
		return n.run(ctx, "agent.hcl", waitKeyring)
	case NomadClientOnly:
		since := time.Now().Truncate(time.Second)
		return n.run(ctx, "agent.hcl", func(cl *api.Client) string { return clientState(cl, n.NodeName(), since) })
	}
	if _, err := os.Stat(filepath.Join(n.Config.DataDir, "server", "raft")); err != nil {
		if err := n.run(ctx, "bootstrap.hcl", waitKeyring); err != nil {
			return err
		}
		n.proc.stop(syscall.SIGINT, 15*time.Second)
	}
	return n.run(ctx, "agent.hcl", nomadState)
}

// tmpDir is the agent's temporary directory.
func (n *Nomad) tmpDir() string { return filepath.Join(n.Dir, "tmp") }

func (n *Nomad) run(ctx context.Context, config string, ready func(*api.Client) string) error {
	p, err := n.opts.start(n.Dir, "nomad", cleanEnv(n.Marker(), "TMPDIR="+n.tmpDir()),
		n.bin, "agent", "-config="+filepath.Join(n.Dir, config))
	if err != nil {
		return err
	}
	n.proc = p
	if err := waitNomad(ctx, n.Addr, p.exited, ready); err != nil {
		return fmt.Errorf("nomad agent (%s): %w\n%s", config, err, n.LogTail(8192))
	}
	return nil
}

// waitKeyring is "" once the server has a leader and an active root key.
func waitKeyring(cl *api.Client) string {
	if leader, err := cl.Status().Leader(); err != nil || leader == "" {
		return fmt.Sprintf("no leader (%v)", err)
	}
	keys, _, err := cl.Keyring().List(nil)
	if err != nil {
		return fmt.Sprintf("keyring: %v", err)
	}
	for _, k := range keys {
		if k.State == "active" {
			return ""
		}
	}
	return "no active root key"
}

// WaitNomad waits until the agent at addr has a leader, its node is ready
// and the containerd driver on it is detected and healthy.
func WaitNomad(ctx context.Context, addr string) error {
	return waitNomad(ctx, addr, nil, nomadState)
}

// waitNomad polls ready (which says what is missing, or "") until it
// succeeds, ctx ends or exited (if not nil) says the agent is gone.
func waitNomad(ctx context.Context, addr string, exited func() bool, ready func(*api.Client) string) error {
	cl, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		return err
	}
	last := "no answer"
	for {
		if exited != nil && exited() {
			return fmt.Errorf("agent exited (%s)", last)
		}
		if last = ready(cl); last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %s", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// nomadState is "" when ready, else what is missing.
func nomadState(cl *api.Client) string {
	if leader, err := cl.Status().Leader(); err != nil || leader == "" {
		return fmt.Sprintf("no leader (%v)", err)
	}
	nodes, _, err := cl.Nodes().List(nil)
	if err != nil || len(nodes) == 0 {
		return fmt.Sprintf("no node (%v)", err)
	}
	return nodeState(nodes[0].Status, nodes[0].Drivers)
}

// clientState is "" when the node named name has registered since since
// (a restarted client's node looks ready before that, from the servers' old
// state) and is ready with a healthy containerd driver, else what is missing.
func clientState(cl *api.Client, name string, since time.Time) string {
	if leader, err := cl.Status().Leader(); err != nil || leader == "" {
		return fmt.Sprintf("no leader (%v)", err)
	}
	nodes, _, err := cl.Nodes().List(&api.QueryOptions{Filter: fmt.Sprintf("Name == %q", name)})
	if err != nil || len(nodes) == 0 {
		return fmt.Sprintf("node %s not registered (%v)", name, err)
	}
	node, _, err := cl.Nodes().Info(nodes[0].ID, nil)
	if err != nil || node.StatusUpdatedAt < since.Unix() {
		return fmt.Sprintf("node %s not registered since the agent started (%v)", name, err)
	}
	if st := nodeState(node.Status, node.Drivers); st != "" {
		return name + ": " + st
	}
	return ""
}

// nodeState is "" when a node's status is ready and its containerd driver
// detected and healthy, else what is missing.
func nodeState(status string, drivers map[string]*api.DriverInfo) string {
	if status != "ready" {
		return "node " + status
	}
	d := drivers["containerd"]
	switch {
	case d == nil:
		return "containerd driver not fingerprinted"
	case !d.Detected || !d.Healthy:
		return fmt.Sprintf("containerd driver detected=%v healthy=%v: %s", d.Detected, d.Healthy, d.HealthDescription)
	}
	return ""
}

// NodeName is the agent's name, and its node's.
func (n *Nomad) NodeName() string { return "ndc-" + n.id }

// RPCAddr is the host:port a client agent joins this (server) agent at.
func (n *Nomad) RPCAddr() string { return fmt.Sprintf("127.0.0.1:%d", n.Ports.RPC) }

// API is a client for the agent.
func (n *Nomad) API() *api.Client {
	cl, err := api.NewClient(&api.Config{Address: n.Addr})
	if err != nil {
		panic(err) // only fails on a malformed address
	}
	return cl
}

// Command is the nomad CLI pointed at the agent.
func (n *Nomad) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, n.bin, args...)
	cmd.Env = append(cleanEnv(), "NOMAD_ADDR="+n.Addr)
	return cmd
}

// PID is the agent's process id (0 when it is not running).
func (n *Nomad) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.exited() {
		return 0
	}
	return n.proc.pid()
}

// LogTail is the agent's last warnings and errors (the cause of a failure
// often lies far before the end of its debug log), then the last size bytes
// of its log, without the HTTP request lines.
func (n *Nomad) LogTail(size int64) string {
	path := filepath.Join(n.Dir, "nomad.log")
	var problems, keep []string
	if b, err := os.ReadFile(path); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "[ERROR]") || strings.Contains(l, "[WARN]") {
				problems = append(problems, l)
			}
		}
	}
	if len(problems) > 30 {
		problems = problems[len(problems)-30:]
	}
	for _, l := range strings.Split(fileTail(path, 4*size), "\n") {
		if !strings.Contains(l, "http: request complete") {
			keep = append(keep, l)
		}
	}
	out := strings.Join(keep, "\n")
	if len(out) > int(size) {
		out = out[len(out)-int(size):]
	}
	return "warnings and errors:\n" + strings.Join(problems, "\n") + "\n...\n" + out
}

// Kill SIGKILLs the agent alone: its plugins and tasks keep running, as after
// a crash.
func (n *Nomad) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		n.proc.stop(syscall.SIGKILL, 0)
	}
}

// Restart stops the agent (SIGINT, SIGKILL after 15s) if it runs and starts
// it again with the same config and data dir, waiting until it is ready.
func (n *Nomad) Restart() error {
	n.mu.Lock()
	if n.proc != nil {
		n.proc.stop(syscall.SIGINT, 15*time.Second)
	}
	n.mu.Unlock()
	return n.start()
}

// Stop stops the agent (SIGINT, SIGKILL after 15s), kills what it started
// that is still running (plugins, logmon, executors), unmounts what is left
// under its data dir and removes its files (the data dir only if it made it).
func (n *Nomad) Stop() error {
	var err error
	n.stopOnce.Do(func() {
		n.mu.Lock()
		if n.proc != nil {
			n.proc.stop(syscall.SIGINT, 15*time.Second)
		}
		n.mu.Unlock()
		if left := procsWithEnv(n.Marker()); len(left) > 0 {
			killPIDs(append(descendants(left), left...))
		}
		err = UnmountAll(n.Config.DataDir)
		if cerr := removeCgroupParent(n.Config.CgroupParent); err == nil {
			err = cerr
		}
		if n.ownDir {
			if rerr := removeTree(n.Dir); err == nil {
				err = rerr
			}
		}
	})
	return err
}

// StartNomad starts an agent for the test and stops it when the test ends.
func StartNomad(t testing.TB, cfg NomadConfig) *Nomad {
	t.Helper()
	requireNomad(t, cfg)
	n, err := LaunchNomad(cfg, LaunchOptions{})
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	stopAtCleanup(t, "nomad", n)
	return n
}

// requireNomad skips the test (fails it under CI=true) without root, the
// nomad binary or the plugin binary in cfg's plugin dir.
func requireNomad(t testing.TB, cfg NomadConfig) {
	t.Helper()
	Require(t, true, "nomad")
	pd := cfg.PluginDir
	if pd == "" {
		pd = filepath.Join(RepoRoot(), "bin")
	}
	if _, err := os.Stat(filepath.Join(pd, PluginBinary)); err != nil {
		if InCI() {
			t.Fatalf("testbed: %s not in %s (run `make build`)", PluginBinary, pd)
		}
		t.Skipf("testbed: %s not in %s (run `make build`)", PluginBinary, pd)
	}
}
