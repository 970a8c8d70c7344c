package driver

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// taskCpuset is the cpuset cgroup the Nomad client keeps for the task
// (its CpusetCgroupPath), in which the container runs so that a task
// without reserved cores stays on the node's shared cores as reservations
// come and go, and one with them on exactly its cores. It is nil when the
// client keeps none: then reserved cores still apply to the task that
// reserved them (its cpuset.cpus), but the others run on all cores.
func taskCpuset(cfg *drivers.TaskConfig) (*executor.Cpuset, error) {
	r := cfg.Resources
	if r == nil || r.LinuxResources == nil {
		return nil, nil
	}
	cs, err := executor.OpenCpuset(r.LinuxResources.CpusetCgroupPath)
	if err != nil {
		return nil, fmt.Errorf("resources: the Nomad client's cpuset cgroup: %w", err)
	}
	return cs, nil
}

// execCpuset is the task's cpuset for an exec'd process; a cgroup that
// is no longer usable leaves the process on the container's own cpuset.
func execCpuset(cfg *drivers.TaskConfig, logger hclog.Logger) *executor.Cpuset {
	cs, err := taskCpuset(cfg)
	if err != nil {
		logger.Warn("exec runs outside the task's cpuset", "error", err)
	}
	return cs
}
