package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	goversion "github.com/hashicorp/go-version"
)

// TestBuiltVersion builds the binary the way the Makefile does and checks
// that it reports a version Nomad's plugin loader accepts (semver).
func TestBuiltVersion(t *testing.T) {
	out, err := exec.Command("bash", "hack/version.sh").Output()
	if err != nil {
		t.Fatalf("failed to run hack/version.sh: %v", err)
	}
	want := strings.TrimSpace(string(out))
	if _, err := goversion.NewSemver(want); err != nil {
		t.Fatalf("hack/version.sh printed %q, which is not semver: %v", want, err)
	}

	bin := filepath.Join(t.TempDir(), "nomad-driver-containerd")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X github.com/nomad-containerd/nomad-driver-containerd/driver.Version="+want, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("failed to build: %v\n%s", err, out)
	}
	got, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatalf("failed to run -version: %v", err)
	}
	if s := strings.TrimSpace(string(got)); s != "nomad-driver-containerd "+want {
		t.Fatalf("-version printed %q, want %q", s, "nomad-driver-containerd "+want)
	}
	checkSubcommand(t, bin)
}

// checkSubcommand runs the built binary's check command: a bad plugin
// option is a ✗ line and exit code 1; a bad argument exit code 2.
func checkSubcommand(t *testing.T, bin string) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "client.hcl")
	if err := os.WriteFile(cfg, []byte("plugin \"containerd\" {\n  config {\n    namespace = \"a b\"\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "check", "-config", cfg).Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("check of a bad config: %v, want exit code 1\n%s", err, out)
	}
	want := "✗ config: " + cfg + `: invalid plugin config: namespace: "a b" may only hold`
	if !strings.HasPrefix(string(out), want) {
		t.Fatalf("check printed\n%s\nwant a first line starting %q", out, want)
	}
	err = exec.Command(bin, "check", "-no-such-flag").Run()
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("check -no-such-flag: %v, want exit code 2", err)
	}
}

// TestDist builds the release archives twice and checks that they are
// byte-for-byte the same, that SHA256SUMS lists them, and that the amd64
// binary reports the version it was built with.
//
// It takes minutes, so `make unit` runs with -short and skips it; `make
// dist-test` (part of `make test`, hence of CI) runs it on its own.
func TestDist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release archives twice; run by `make dist-test`")
	}
	const version = "1.2.3-test"
	var sums [2]string
	var dirs [2]string
	for i := range dirs {
		dirs[i] = t.TempDir()
		cmd := exec.Command("bash", "hack/dist.sh")
		cmd.Env = append(os.Environ(), "VERSION="+version, "DIST="+dirs[i])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("hack/dist.sh: %v\n%s", err, out)
		}
		b, err := os.ReadFile(filepath.Join(dirs[i], "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = string(b)
	}
	if sums[0] != sums[1] {
		t.Fatalf("two builds differ:\n%s\n%s", sums[0], sums[1])
	}
	for _, arch := range []string{"amd64", "arm64"} {
		if !strings.Contains(sums[0], "nomad-driver-containerd_"+version+"_linux_"+arch+".tar.gz") {
			t.Errorf("SHA256SUMS has no %s archive:\n%s", arch, sums[0])
		}
	}
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = dirs[0]
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	if runtime.GOARCH != "amd64" {
		return
	}
	x := t.TempDir()
	name := "nomad-driver-containerd_" + version + "_linux_amd64"
	if out, err := exec.Command("tar", "-xzf", filepath.Join(dirs[0], name+".tar.gz"), "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	got, err := exec.Command(filepath.Join(x, name, "nomad-driver-containerd"), "-version").Output()
	if err != nil {
		t.Fatalf("-version: %v", err)
	}
	if s := strings.TrimSpace(string(got)); s != "nomad-driver-containerd "+version {
		t.Fatalf("archive binary reports %q", s)
	}
	checkLinks(t, filepath.Join(x, name))
}

// linkRe matches the target of a relative markdown link.
var linkRe = regexp.MustCompile(`\]\(([^)#:]+)(#[^)]*)?\)`)

// checkLinks checks that every relative link in dir's README.md names a
// file in dir: the archive carries the docs the README sends operators to.
func checkLinks(t *testing.T, dir string) {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatalf("archive has no README.md: %v", err)
	}
	links := linkRe.FindAllStringSubmatch(string(readme), -1)
	if len(links) == 0 {
		t.Fatal("README.md links no docs")
	}
	for _, m := range links {
		if _, err := os.Stat(filepath.Join(dir, m[1])); err != nil {
			t.Errorf("README.md links %s, which the archive lacks: %v", m[1], err)
		}
	}
}
