package testbed

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// RegistryOptions ask for a registry with TLS and/or basic auth.
type RegistryOptions struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1 from a CA generated
	// for this registry (Registry.CAFile, Registry.CA).
	TLS bool
	// User and Password, when set, are required (htpasswd auth).
	User, Password string
}

// Registry is a docker-registry (distribution v2) of our own on 127.0.0.1:
// plain HTTP unless started with TLS.
type Registry struct {
	Host           string // 127.0.0.1:port
	Dir            string // storage and config
	PID            int
	CA             *CA    // with TLS: the CA that signed the server certificate
	CAFile         string // with TLS: that CA in PEM
	User, Password string // with auth: the one account

	proc     *daemon
	owned    bool
	stopOnce sync.Once
}

// RegistryConfig is the docker-registry config.yml serving dir on addr;
// certFile/keyFile turn on TLS, htpasswd basic auth.
func RegistryConfig(dir, addr, certFile, keyFile, htpasswd string) string {
	lines := []string{
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
	}
	if certFile != "" {
		lines = append(lines, "  tls:", "    certificate: "+certFile, "    key: "+keyFile)
	}
	if htpasswd != "" {
		lines = append(lines, "auth:", "  htpasswd:", "    realm: testbed", "    path: "+htpasswd)
	}
	return strings.Join(lines, "\n") + "\n"
}

// LaunchRegistry starts a registry on a free port of 127.0.0.1 with its
// config, log and storage in o.Dir (default: a new temp dir) and waits until
// it answers. Stop undoes it; tests use StartRegistry.
func LaunchRegistry(o LaunchOptions, ro RegistryOptions) (_ *Registry, err error) {
	bin, err := LookBin("docker-registry")
	if err != nil {
		return nil, err
	}
	dir, owned, err := o.dir("ndc-registry-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && owned {
			_ = os.RemoveAll(dir)
		}
	}()
	var (
		ca                                      *CA
		caFile, certFile, keyFile, htpasswdFile string
	)
	if ro.TLS {
		if ca, err = NewCA("testbed registry CA"); err != nil {
			return nil, err
		}
		if certFile, keyFile, caFile, err = ca.WriteServerCert(dir); err != nil {
			return nil, err
		}
	}
	if ro.User != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(ro.Password), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		htpasswdFile = filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswdFile, []byte(ro.User+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, CA: ca, CAFile: caFile,
			User: ro.User, Password: ro.Password, owned: owned}
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(RegistryConfig(dir, r.Host, certFile, keyFile, htpasswdFile)), 0o644); err != nil {
			return nil, err
		}
		if r.proc, err = o.start(dir, "registry", cleanEnv(), bin, "serve", cfg); err != nil {
			return nil, err
		}
		r.PID = r.proc.pid()
		if last = r.waitReady(15 * time.Second); last == nil {
			return r, nil
		}
		last = fmt.Errorf("%w\n%s", last, r.proc.logTail(2048))
		r.proc.stop(syscall.SIGKILL, 0) // maybe the port was taken meanwhile: try another
	}
	return nil, fmt.Errorf("registry did not come up: %w", last)
}

func (r *Registry) waitReady(timeout time.Duration) error {
	hc := r.HTTPClient()
	hc.Timeout = time.Second
	exited := false
	ready := Poll(timeout, 50*time.Millisecond, func() bool {
		if r.proc.exited() {
			exited = true
			return true
		}
		resp, err := hc.Get(r.URL() + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized
	})
	switch {
	case exited:
		return fmt.Errorf("docker-registry (pid %d) exited", r.PID)
	case ready:
		return nil
	}
	return fmt.Errorf("no answer on %s within %s", r.URL(), timeout)
}

// URL is http://Host, or https://Host with TLS.
func (r *Registry) URL() string {
	if r.CA != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// HTTPClient talks to the registry: no proxies, and with TLS trusting its CA
// alone.
func (r *Registry) HTTPClient() *http.Client {
	tr := &http.Transport{Proxy: nil}
	if r.CA != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: r.CA.Pool(), MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}
}

// WriteHostsDir writes root/<Host>/hosts.toml, an entry of a containerd
// hosts directory (registry_config_dir) for this registry: its URL as the
// server and, with TLS, its CA. It returns root.
func (r *Registry) WriteHostsDir(root string) (string, error) {
	dir := filepath.Join(root, r.Host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	toml := fmt.Sprintf("server = %q\n", r.URL())
	if r.CAFile != "" {
		toml += fmt.Sprintf("ca = %q\n", r.CAFile)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		return "", err
	}
	return root, nil
}

// Push uploads img as repoTag ("demo/busybox:1") with the registry's scheme,
// CA and credentials, and returns the manifest digest.
func (r *Registry) Push(ctx context.Context, img *Image, repoTag string) (digest.Digest, error) {
	return img.PushTo(ctx, r.URL(), r.HTTPClient(), r.User, r.Password, repoTag)
}

// PushBusybox builds the busybox image and pushes it over plain HTTP as
// repoTag; it fails the test on an error.
func (r *Registry) PushBusybox(ctx context.Context, t testing.TB, repoTag string) (*Image, digest.Digest) {
	t.Helper()
	img, err := BuildBusybox()
	if err != nil {
		t.Fatal(err)
	}
	dgst, err := img.Push(ctx, r.Host, repoTag)
	if err != nil {
		t.Fatal(err)
	}
	return img, dgst
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

// StartRegistry starts a registry for the test (plain HTTP, no auth, unless
// opts say otherwise) and stops it when the test ends.
func StartRegistry(t testing.TB, opts ...RegistryOptions) *Registry {
	t.Helper()
	Require(t, false, "docker-registry")
	var ro RegistryOptions
	if len(opts) > 0 {
		ro = opts[0]
	}
	r, err := LaunchRegistry(LaunchOptions{}, ro)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	stopAtCleanup(t, "registry", r)
	return r
}
