package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StargzBin is the stargz snapshotter daemon (hack/tools/stargz).
const StargzBin = "containerd-stargz-grpc"

// Stargz is a stargz snapshotter of our own, serving containerd's
// snapshotter API on Address for a containerd that names it as a proxy
// plugin; its FUSE mounts live under Root.
type Stargz struct {
	Address string
	Root    string
	PID     int

	dir      string // removed by Stop, when owned
	owned    bool
	proc     *daemon
	stopOnce sync.Once
	stopErr  error
}

// StargzConfig is the snapshotter's config: no background fetch of whole
// layers, so that only what tasks read is fetched.
const StargzConfig = "no_background_fetch = true\n"

// LaunchStargz starts the stargz snapshotter with its root, config
// (StargzConfig and extraConfig's lines) and log in o.Dir (default: a new
// temp dir) and its socket under /run, and waits until it answers. Stop undoes everything; tests use StartStargz.
func LaunchStargz(o LaunchOptions, extraConfig ...string) (_ *Stargz, err error) {
	bin, err := LookBin(StargzBin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("the stargz snapshotter needs FUSE: %w", err)
	}
	dir, owned, err := o.dir("ndc-stargz-")
	if err != nil {
		return nil, err
	}
	s := &Stargz{Root: filepath.Join(dir, "root"), dir: dir, owned: owned}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	s.Address = filepath.Join(dir, "stargz.sock")
	if len(s.Address) >= 100 {
		return nil, fmt.Errorf("stargz socket path %s is too long", s.Address)
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(StargzConfig+strings.Join(extraConfig, "")), 0o644); err != nil {
		return nil, err
	}
	if s.proc, err = o.start(dir, "stargz", cleanEnv(), bin, "-address", s.Address, "-root", s.Root, "-config", cfg, "-log-level", "debug"); err != nil {
		return nil, err
	}
	s.PID = s.proc.pid()
	ready := Poll(30*time.Second, 50*time.Millisecond, func() bool {
		if s.proc.exited() {
			return true
		}
		c, err := (&net.Dialer{}).DialContext(context.Background(), "unix", s.Address)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if !ready || s.proc.exited() {
		return nil, fmt.Errorf("stargz snapshotter did not come up on %s:\n%s", s.Address, s.proc.logTail(4096))
	}
	return s, nil
}

// LogTail is the last n bytes of the snapshotter's log.
func (s *Stargz) LogTail(n int64) string {
	if s.proc == nil {
		return ""
	}
	return s.proc.logTail(n)
}

// Stop stops the snapshotter (SIGINT, SIGKILL after 10s), unmounts what it
// left mounted and removes its dir (its root, when the dir is not ours).
func (s *Stargz) Stop() error {
	s.stopOnce.Do(func() {
		if s.proc != nil {
			s.proc.stop(syscall.SIGINT, 10*time.Second)
		}
		dir := s.Root
		if s.owned {
			dir = s.dir
		}
		s.stopErr = removeTree(dir)
	})
	return s.stopErr
}

// StartStargz starts a stargz snapshotter for the test and stops it, with
// what it mounted, when the test ends (after a containerd started later).
func StartStargz(t testing.TB, extraConfig ...string) *Stargz {
	t.Helper()
	Require(t, true, StargzBin)
	s, err := LaunchStargz(LaunchOptions{}, extraConfig...)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	stopAtCleanup(t, "stargz", s)
	return s
}

// StartContainerdWithStargz starts a stargz snapshotter (with
// extraConfig's lines in its config) and a hermetic containerd that has it
// as the proxy snapshotter "stargz".
func StartContainerdWithStargz(t testing.TB, extraConfig ...string) (*Containerd, *Stargz) {
	t.Helper()
	Require(t, true, "containerd", "containerd-shim-runc-v2", "runc", StargzBin)
	s := StartStargz(t, extraConfig...)
	c, err := LaunchContainerdWith(LaunchOptions{}, ContainerdOptions{ProxySnapshotters: map[string]string{"stargz": s.Address}})
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	stopAtCleanup(t, "containerd", c)
	return c, s
}

// Mounts lists what is mounted under the snapshotter's root (its FUSE
// mounts of remote layers).
func (s *Stargz) Mounts() []string { return mountsUnder(s.Root) }
