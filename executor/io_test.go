package executor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fifoAndFile makes a directory of the test's own with the fifo
// stdout.fifo and a regular file name that holds data.
func fifoAndFile(t *testing.T, name string, data []byte) (dir, fifo, file string) {
	t.Helper()
	dir = t.TempDir()
	fifo = filepath.Join(dir, "stdout.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, name)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, fifo, file
}

func TestOpenLogFifos(t *testing.T) {
	dir, fifo, file := fifoAndFile(t, "file", nil)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	fileLink := filepath.Join(dir, "file-link")
	if err := os.Symlink(file, fileLink); err != nil {
		t.Fatal(err)
	}
	dirLink := filepath.Join(t.TempDir(), "logs")
	if err := os.Symlink(dir, dirLink); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		stdout, stderr string
		want           string // error
	}{
		{},
		{stdout: fifo, stderr: fifo},
		{stdout: fifo},
		{stdout: "stdout.fifo", want: "invalid stdout: log fifo \"stdout.fifo\" is not an absolute path"},
		{stdout: file, want: "is not a named pipe (a regular file)"},
		{stdout: fifo, stderr: link, want: "invalid stderr: log fifo \"" + link + "\" is not a named pipe (a symlink)"},
		{stdout: fileLink, want: "is not a named pipe (a symlink)"},
		{stdout: dir, want: "is not a named pipe (a directory)"},
		{stdout: filepath.Join(dir, "missing"), want: "no such file"},
		{stdout: filepath.Join(dirLink, "stdout.fifo"), want: "a directory on its path beneath \"/\" is a symlink"},
	}
	for _, tc := range cases {
		l, err := openLogFifos("", tc.stdout, tc.stderr)
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("openLogFifos(%q, %q) = %v, want %q", tc.stdout, tc.stderr, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("openLogFifos(%q, %q) = %v", tc.stdout, tc.stderr, err)
			continue
		}
		for _, got := range []string{l.stdout, l.stderr} {
			if tc.stdout == "" && tc.stderr == "" {
				if got != "" {
					t.Errorf("no fifos gave %q", got)
				}
				continue
			}
			if got == os.DevNull {
				continue
			}
			// the shim gets a name that reaches the checked fifo itself
			prefix := fmt.Sprintf("/proc/%d/fd/", os.Getpid())
			if !strings.HasPrefix(got, prefix) {
				t.Errorf("shim path %q does not start with %q", got, prefix)
			}
			st, err := os.Stat(got)
			if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
				t.Errorf("shim path %q does not reach a fifo: %v %v", got, st, err)
			}
		}
		if tc.stderr == "" && tc.stdout != "" && l.stderr != os.DevNull {
			t.Errorf("missing stderr is %q, want %s", l.stderr, os.DevNull)
		}
		l.Close()
	}
}

// A fifo swapped for a symlink after it was opened cannot redirect the shim.
func TestLogFifoSwappedAfterOpen(t *testing.T) {
	_, fifo, canary := fifoAndFile(t, "canary", []byte("host\n"))
	l, err := openLogFifos("", fifo, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(canary, fifo); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(l.stdout)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("after the swap the shim's path %q reaches %s, not the fifo", l.stdout, st.Mode())
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
