package main

import (
	"os/exec"
	"path/filepath"
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
}
