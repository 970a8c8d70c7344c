package testbed

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Registry is a docker-registry (distribution v2) of our own, plain HTTP on
// 127.0.0.1.
type Registry struct {
	Host string // 127.0.0.1:port
	Dir  string // storage and config
	PID  int

	proc     *daemon
	owned    bool
	stopOnce sync.Once
}

// RegistryConfig is the docker-registry config.yml serving dir over plain
// HTTP on addr.
func RegistryConfig(dir, addr string) string {
	return strings.Join([]string{
		"version: 0.1",
		"log:",
		"  level: warn",
		"  accesslog:",
		"    disabled: true",
		"storage:",
		"  filesystem:",
		"    rootdirectory: " + filepath.Join(dir, "storage"),
		"  delete:",
		"    enabled: true",
		"  maintenance:",
		"    uploadpurging:",
		"      enabled: false",
		"http:",
		"  addr: " + addr,
		"",
	}, "\n")
}

// LaunchRegistry starts a registry on a free port of 127.0.0.1 with its
// config, log and storage in o.Dir (default: a new temp dir) and waits until
// it answers. Stop undoes it; tests use StartRegistry.
func LaunchRegistry(o LaunchOptions) (*Registry, error) {
	bin, err := LookBin("docker-registry")
	if err != nil {
		return nil, err
	}
	dir, owned, err := o.dir("ndc-registry-")
	if err != nil {
		return nil, err
	}
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, owned: owned}
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(RegistryConfig(dir, r.Host)), 0o644); err != nil {
			return nil, err
		}
		if r.proc, err = o.start(dir, "registry", cleanEnv(), bin, "serve", cfg); err != nil {
			last = err
			break
		}
		r.PID = r.proc.pid()
		if last = r.waitReady(15 * time.Second); last == nil {
			return r, nil
		}
		last = fmt.Errorf("%w\n%s", last, r.proc.logTail(2048))
		r.proc.stop(syscall.SIGKILL, 0) // maybe the port was taken meanwhile: try another
	}
	if owned {
		_ = os.RemoveAll(dir)
	}
	return nil, fmt.Errorf("registry did not come up: %w", last)
}

func (r *Registry) waitReady(timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r.proc.exited() {
			return fmt.Errorf("docker-registry (pid %d) exited", r.PID)
		}
		resp, err := hc.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer on %s within %s", r.Host, timeout)
}

// LogTail is the last n bytes of the registry's log.
func (r *Registry) LogTail(n int64) string { return r.proc.logTail(n) }

// Stop stops the registry (SIGTERM, SIGKILL after 5s) and removes its
// storage (and its dir, when it made it).
func (r *Registry) Stop() error {
	var err error
	r.stopOnce.Do(func() {
		r.proc.stop(syscall.SIGTERM, 5*time.Second)
		if r.owned {
			err = os.RemoveAll(r.Dir)
		} else {
			err = os.RemoveAll(filepath.Join(r.Dir, "storage"))
		}
	})
	return err
}

// StartRegistry starts a registry for the test and stops it when the test ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	Require(t, false, "docker-registry")
	r, err := LaunchRegistry(LaunchOptions{})
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("registry log (tail):\n%s", r.LogTail(4096))
		}
		if err := r.Stop(); err != nil {
			t.Errorf("testbed: registry cleanup: %v", err)
		}
	})
	return r
}
