package testbed

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRepoRoot(t *testing.T) {
	repo := t.TempDir()
	sub := filepath.Join(repo, "testbed")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	// run from the repository, as `make demo` runs the testbed command:
	// a relative name resolved against it must not come back as "."
	t.Chdir(repo)
	for _, tc := range []struct {
		name, file, wd, want string
	}{
		{"source file's directory first", filepath.Join(sub, "paths.go"), elsewhere, repo},
		{"working directory when the file is elsewhere", "/nonexistent/paths.go", sub, repo},
		// -trimpath: the file is known by its import path, a relative name
		{"trimmed file name: the working directory", "example.com/x/testbed/paths.go", sub, repo},
		{"trimmed file name, working directory outside", "example.com/x/testbed/paths.go", elsewhere, ""},
		{"relative working directory is not used", "", "testbed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := repoRoot(tc.file, tc.wd); got != tc.want {
				t.Errorf("repoRoot(%q, %q) = %q, want %q", tc.file, tc.wd, got, tc.want)
			}
		})
	}
}
