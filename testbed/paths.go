// Package testbed is test support for the integration and e2e tests: a
// hermetic containerd, a local registry, locally built images, a Nomad agent
// and leak checks. Only tests and the demo tooling (cmd/testbed) import it.
//
// A typical integration test:
//
//	cd := testbed.StartContainerd(t) // own root, state, socket; namespace "nomad"
//	testbed.LeakCheck(t, cd)         // right after: runs after the test's own cleanups
//	reg := testbed.StartRegistry(t)  // plain HTTP on 127.0.0.1 (RegistryOptions: TLS, auth)
//	img, _ := testbed.BuildBusybox() // deterministic OCI image
//	img.Push(ctx, reg.Host, "demo/busybox:1")
//	testbed.ImportBusybox(t, cd, "testbed.local/busybox:1") // or straight into containerd
//
// and an e2e test adds
//
//	n := testbed.StartNomad(t, testbed.NomadConfig{PluginConfig: testbed.ContainerdPluginConfig(cd)})
//
// or, for several nodes, a server-only agent and one client-only agent per
// config (give each client a containerd and a CNINet of its own):
//
//	c := testbed.StartNomadCluster(t, testbed.NomadConfig{PluginConfig: a}, testbed.NomadConfig{PluginConfig: b})
//
// Every Start* skips its test (fails it under CI=true) when a binary or root
// is missing, and stops what it started, by PID, when the test ends. The
// Launch* functions do the same outside tests; Stop undoes them.
package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	rootOnce sync.Once
	rootDir  string
)

// RepoRoot is the directory holding the module's go.mod, found from this
// source file's location (or, failing that, from the working directory).
func RepoRoot() string {
	rootOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		wd, _ := os.Getwd()
		rootDir = repoRoot(file, wd)
	})
	return rootDir
}

// repoRoot finds go.mod above the directory of file, then above wd. A
// binary built with -trimpath knows file by its import path only, a
// relative path that would lead to "." (the working directory by a name
// that changes with it): then wd alone is the one to go by.
func repoRoot(file, wd string) string {
	var starts []string
	if filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if filepath.IsAbs(wd) {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		if r := findGoMod(dir); r != "" {
			return r
		}
	}
	return ""
}

func findGoMod(dir string) string {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// BinDir holds the binaries `make deps` builds (containerd, shim, ctr, nomad, cosign).
func BinDir() string { return filepath.Join(RepoRoot(), ".deps", "bin") }

// CNIBinDir holds the CNI reference plugins `make deps` builds.
func CNIBinDir() string { return filepath.Join(RepoRoot(), ".deps", "cni", "bin") }

// LookBin finds a binary in BinDir, then in PATH (plus the sbin dirs, which a
// non-login root shell may lack).
func LookBin(name string) (string, error) {
	p := filepath.Join(BinDir(), name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// RuncEnv names a runc binary that the test bed's containerd daemons run
// instead of the one LookBin finds (make deps builds the pinned runc into
// BinDir): a way to try one runc build on every tier.
const RuncEnv = "TESTBED_RUNC"

// RuncBin is the runc the test bed's containerd daemons run: $TESTBED_RUNC
// when set (it must be an executable file), else LookBin's.
func RuncBin() (string, error) {
	p := os.Getenv(RuncEnv)
	if p == "" {
		return LookBin("runc")
	}
	st, err := os.Stat(p)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s=%q: must be an executable runc binary", RuncEnv, p)
	}
	return p, nil
}

// InCI reports whether CI=true: missing dependencies are failures there.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips the test (or fails it under CI=true) when root is needed but
// missing, or when one of bins is found neither in BinDir nor in PATH.
func Require(t testing.TB, needRoot bool, bins ...string) {
	t.Helper()
	var missing []string
	if needRoot && os.Geteuid() != 0 {
		missing = append(missing, "root privileges")
	}
	for _, b := range bins {
		look := LookBin
		if b == "runc" {
			look = func(string) (string, error) { return RuncBin() }
		}
		if _, err := look(b); err != nil {
			missing = append(missing, b+" (not in "+BinDir()+" nor PATH; run `make deps`)")
		}
	}
	if len(missing) == 0 {
		return
	}
	if InCI() {
		t.Fatalf("testbed: missing %v (CI=true: a missing dependency is a failure)", missing)
	}
	t.Skipf("testbed: missing %v", missing)
}

// childPath is the PATH given to the daemons we start: our binaries first,
// then the system's (Debian's runc lives in /usr/sbin).
func childPath() string {
	return BinDir() + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}
