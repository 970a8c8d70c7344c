package preflight

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/shoenig/test/must"
)

// staticBinary builds a statically linked program (pure Go, no cgo).
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644))
	must.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module static\n"), 0o644))
	out := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	b, err := cmd.CombinedOutput()
	must.NoError(t, err, must.Sprint(string(b)))
	return out
}

func TestCheckInit(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	must.NoError(t, os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644))
	script := filepath.Join(dir, "script")
	must.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755))
	dynamic, err := exec.LookPath("sh")
	must.NoError(t, err)
	dynamic, err = filepath.EvalSymlinks(dynamic)
	must.NoError(t, err)

	cases := []struct {
		name, path string
		status     Status
		detail     string
	}{
		{"static", staticBinary(t), Pass, "static binary"},
		{"missing", filepath.Join(dir, "none"), Warn, "no such file"},
		{"directory", dir, Warn, "is not an executable file"},
		{"not executable", plain, Warn, "is not an executable file"},
		{"not ELF", script, Warn, "is not an ELF binary"},
		{"dynamic", dynamic, Warn, "is dynamically linked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := checkInit(c.path)
			must.Eq(t, c.status, r.Status, must.Sprint(r.Detail))
			must.StrContains(t, r.Detail, c.detail)
			if c.status != Pass {
				must.StrContains(t, r.Fix, "tini")
			}
		})
	}
}

func TestCheckCDI(t *testing.T) {
	const spec = "cdiVersion: \"0.6.0\"\nkind: vendor.com/fpga\ndevices:\n- name: \"0\"\n  containerEdits:\n    env: [\"FPGA=0\"]\n"
	cases := []struct {
		name   string
		files  map[string]string
		status Status
		detail string
	}{
		{"no specs", nil, Pass, "devices none"},
		{"one spec", map[string]string{"fpga.yaml": spec}, Pass, "devices vendor.com/fpga=0"},
		{"broken spec", map[string]string{"fpga.yaml": spec, "bad.yaml": "cdiVersion: [\n"}, Fail, "bad.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range c.files {
				must.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
			}
			r := checkCDI([]string{dir, filepath.Join(dir, "absent")})
			must.Eq(t, c.status, r.Status, must.Sprint(r.Detail))
			must.StrContains(t, r.Detail, c.detail)
		})
	}
}
