package executor

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCheckLogFifo(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "stdout.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want string
	}{
		{path: ""},
		{path: fifo},
		{path: "stdout.fifo", want: "not an absolute path"},
		{path: file, want: "not a named pipe"},
		{path: link, want: "not a named pipe"},
		{path: filepath.Join(dir, "missing"), want: "no such file"},
	}
	for _, tc := range cases {
		err := checkLogFifo(tc.path)
		if tc.want == "" && err != nil {
			t.Errorf("checkLogFifo(%q) = %v", tc.path, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkLogFifo(%q) = %v, want %q", tc.path, err, tc.want)
		}
	}
}

func TestLogCreatorIsStatic(t *testing.T) {
	io, err := logCreator("/a/stdout", "/a/stderr")("web-1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := io.Config()
	if cfg.Stdout != "/a/stdout" || cfg.Stderr != "/a/stderr" || cfg.Stdin != "" || cfg.Terminal {
		t.Fatalf("config = %+v", cfg)
	}
	io.Cancel()
	io.Wait()
	if err := io.Close(); err != nil {
		t.Fatal(err)
	}
}
