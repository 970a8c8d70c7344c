package testbed

import (
	"path/filepath"
	"strings"
)

// ProcsWithEnv lists the PIDs whose environment holds the exact entry kv
// (Nomad.Marker finds an agent's plugins, logmons, executors and loggers).
func ProcsWithEnv(kv string) []int { return procsWithEnv(kv) }

// ShimPIDs lists the containerd shims of the daemon listening on address
// (their -address argument).
func ShimPIDs(address string) []int {
	return procs(func(_ int, args []string) bool {
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			return false
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == address {
				return true
			}
		}
		return false
	})
}
