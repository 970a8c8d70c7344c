//go:build integration

package driver

import (
	"fmt"
	"os"
	"testing"
)

// TestMain gives the run a temporary directory of its own and removes it
// afterwards: Nomad's driver harness leaves the directories it makes for
// each alloc dir, and go-plugin its sockets, under the temporary directory.
func TestMain(m *testing.M) {
	os.Exit(runInOwnTempDir(m))
}

func runInOwnTempDir(m *testing.M) int {
	dir, err := os.MkdirTemp("", "driver-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "failed to create the run's temporary directory: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Setenv("TMPDIR", dir); err != nil {
		fmt.Fprintf(os.Stderr, "failed to set TMPDIR: %v\n", err)
		return 1
	}
	return m.Run()
}
