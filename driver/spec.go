package driver

import (
	"fmt"
	"slices"

	"github.com/hashicorp/nomad/drivers/shared/capabilities"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/portmap"
)

const mib = 1024 * 1024

// plan is everything StartTask decided before touching containerd.
type plan struct {
	containerID string
	imageRef    string
	runtime     string
	labels      map[string]string
	spec        executor.SpecConfig
	net         netMode
	ports       *portmap.Result
	cpuset      *executor.Cpuset
	// pins hold the bind sources open until the container exists; the
	// caller closes them (see pins).
	pins *pins
}

// planTask applies the plugin's policy to a task's config and returns the
// container to create. It opens the task's bind sources (held in the plan's
// pins, which the caller closes) but changes nothing.
func planTask(c *Config, cfg *drivers.TaskConfig, tc *TaskConfig) (_ *plan, err error) {
	id := containerID(cfg.Name, cfg.AllocID)
	runtime := c.Runtime
	if tc.Runtime != "" {
		if !slices.Contains(c.AllowRuntimes, tc.Runtime) {
			return nil, fmt.Errorf("runtime: %q is not in the plugin's allow_runtimes %q", tc.Runtime, c.AllowRuntimes)
		}
		runtime = tc.Runtime
	}
	if tc.Privileged && !c.AllowPrivileged {
		return nil, fmt.Errorf("privileged: true is refused: the plugin needs allow_privileged = true")
	}
	caps, err := capabilities.Calculate(capabilities.NomadDefaults(), c.AllowCaps, tc.CapAdd, tc.CapDrop)
	if err != nil {
		return nil, fmt.Errorf("cap_add: %q: %w (allow_caps is %q)", tc.CapAdd, err, c.AllowCaps)
	}
	hostPID, err := namespaceMode("pid_mode", tc.PIDMode, c.DefaultPIDMode, c.AllowHostPID, "allow_host_pid")
	if err != nil {
		return nil, err
	}
	hostIPC, err := namespaceMode("ipc_mode", tc.IPCMode, c.DefaultIPCMode, c.AllowHostIPC, "allow_host_ipc")
	if err != nil {
		return nil, err
	}
	pinned := &pins{}
	defer func() {
		if err != nil {
			pinned.close()
		}
	}()
	td := cfg.TaskDir()
	mounts, logsMount, err := nomadMounts(cfg, pinned)
	if err != nil {
		return nil, err
	}
	binds, err := resolveMounts(tc.Mounts, td.Dir, cfg.AllocDir, c, pinned)
	if err != nil {
		return nil, err
	}
	mode, ports, err := planNetwork(c, cfg, tc)
	if err != nil {
		return nil, err
	}
	cpuset, err := taskCpuset(cfg)
	if err != nil {
		return nil, err
	}
	spec := executor.SpecConfig{
		Entrypoint:     tc.Entrypoint,
		Command:        commandArgs(tc),
		Env:            cfg.Env,
		Cwd:            tc.WorkDir,
		User:           cfg.User,
		Hostname:       hostname(cfg, tc),
		Mounts:         append(append(mounts, binds...), logsMount),
		CheckTarget:    bindTargetCheck(tc.Mounts),
		Capabilities:   caps,
		Privileged:     tc.Privileged,
		ReadonlyRootfs: tc.ReadonlyRootfs,
		PidsLimit:      tc.PidsLimit,
		HostPID:        hostPID,
		HostIPC:        hostIPC,
		ShimGroup:      cfg.AllocID,
	}
	applyResources(&spec, cfg.Resources)
	if spec.Devices, err = reservedDevices(cfg); err != nil {
		return nil, err
	}
	if err := planSecurity(c.Security, tc.Security, td.Dir, mode.kind != netHost, &spec); err != nil {
		return nil, err
	}
	if err := planLimits(c.Limits, tc.Limits, cfg.Resources, &spec); err != nil {
		return nil, err
	}
	switch mode.kind {
	case netGroup:
		spec.NetNSPath = cfg.NetworkIsolation.Path
	case netHost:
		spec.HostNetwork = true
	}
	labels := containerLabels(cfg, id, tc.Labels)
	if mode.kind == netCNI {
		labels[labelNetwork] = mode.String()
	}
	return &plan{
		containerID: id,
		imageRef:    tc.Image,
		runtime:     runtime,
		labels:      labels,
		spec:        spec,
		net:         mode,
		ports:       ports,
		cpuset:      cpuset,
		pins:        pinned,
	}, nil
}

// planNetwork resolves the task's network mode and its port maps; a
// driver-run CNI network gets its netns path at setup.
func planNetwork(c *Config, cfg *drivers.TaskConfig, tc *TaskConfig) (netMode, *portmap.Result, error) {
	mode, err := resolveNetMode(c.DefaultNetworkMode, cfg, tc.Network)
	if err != nil {
		return mode, nil, err
	}
	if err := checkExtraHosts(tc.Network, mode); err != nil {
		return mode, nil, err
	}
	req := portmap.Request{Mode: mode.String(), PortMaps: mode.portMaps(), Ports: tc.Network.Ports, PortMap: tc.Network.PortMap}
	if r := cfg.Resources; r != nil {
		if r.Ports != nil {
			req.Allocated = *r.Ports
		}
		if r.NomadResources != nil {
			req.Networks = r.NomadResources.Networks
		}
	}
	ports, err := portmap.Resolve(req)
	return mode, ports, err
}

// commandArgs follows the docker driver: `command` replaces the image's
// Cmd and `args` follow it; `args` alone replace the image's Cmd.
func commandArgs(tc *TaskConfig) []string {
	if tc.Command != "" {
		return append([]string{tc.Command}, tc.Args...)
	}
	if len(tc.Args) > 0 {
		return tc.Args
	}
	return nil
}

// namespaceMode resolves pid_mode / ipc_mode against the plugin default
// and gate; it reports whether the host namespace is used.
func namespaceMode(field, task, def string, allowed bool, gate string) (bool, error) {
	mode := task
	if mode == "" {
		mode = def
	}
	if mode != modeHost {
		return false, nil
	}
	if !allowed {
		return false, fmt.Errorf("%s: %q is refused: the plugin needs %s = true", field, mode, gate)
	}
	return true, nil
}

// applyResources maps Nomad's allocated resources onto the container:
// CPU shares, reserved cores, memory with memory_max as the hard limit.
func applyResources(s *executor.SpecConfig, r *drivers.Resources) {
	if r == nil {
		return
	}
	if lr := r.LinuxResources; lr != nil {
		if lr.CPUShares > 0 {
			s.CPUShares = uint64(lr.CPUShares)
		}
		s.CPUSetCPUs = lr.CpusetCpus
		s.MemoryBytes = lr.MemoryLimitBytes
	}
	if nr := r.NomadResources; nr != nil {
		if nr.Memory.MemoryMB > 0 {
			s.MemoryBytes = nr.Memory.MemoryMB * mib
		}
		if nr.Memory.MemoryMaxMB > nr.Memory.MemoryMB {
			s.MemoryMaxBytes = nr.Memory.MemoryMaxMB * mib
		}
	}
}
