package executor

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/cio"
)

// staticIO hands the shim fixed paths to open itself. The plugin holds no end
// of the pipes, so output keeps flowing to Nomad's log fifos while the plugin
// restarts, and closing it never removes Nomad's files.
type staticIO struct {
	config cio.Config
}

func (s *staticIO) Config() cio.Config { return s.config }
func (s *staticIO) Cancel()            {}
func (s *staticIO) Wait()              {}
func (s *staticIO) Close() error       { return nil }

// logCreator returns a cio.Creator whose IO points the shim at the given
// stdout and stderr paths ("" discards that stream).
func logCreator(stdout, stderr string) cio.Creator {
	return func(string) (cio.IO, error) {
		return &staticIO{config: cio.Config{Stdout: stdout, Stderr: stderr}}, nil
	}
}

// checkLogFifo makes sure a log path is an absolute path to a named pipe and
// not a symlink, so that the shim writes only to the fifo Nomad created.
func checkLogFifo(path string) error {
	if path == "" {
		return nil
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("log fifo %q is not an absolute path", path)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("failed to stat log fifo: %w", err)
	}
	if fi.Mode()&os.ModeNamedPipe == 0 {
		return fmt.Errorf("log fifo %q is not a named pipe (mode %s)", path, fi.Mode())
	}
	return nil
}
