package driver

import (
	"sync"

	"github.com/hashicorp/go-hclog"
	hoststats "github.com/hashicorp/nomad/client/stats"
	"github.com/hashicorp/nomad/helper/stats"
)

// detectCompute reads the node's total CPU compute (cores x MHz) once per
// process, so that CPU usage converts to the MHz ticks Nomad accounts in.
// The plugin protocol of the v1.6 SDK does not carry the agent's own figure
// (or its cpu_total_compute override), so the plugin measures it as the
// agent does.
var detectCompute = sync.OnceValue(func() error { return hoststats.Init(0) })

// newCPUStats is a tracker of one CPU counter of a task.
func newCPUStats() *stats.CpuStats { return stats.NewCpuStats() }

// initCompute detects the node's compute, logging why it could not.
func initCompute(logger hclog.Logger) {
	if err := detectCompute(); err != nil {
		logger.Warn("failed to detect the node's cpu compute; cpu ticks are reported as 0", "error", err)
	}
}
