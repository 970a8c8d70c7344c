package driver

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/platforms"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/image"
)

// TaskConfig is a task's validated driver config with aliases folded in.
type TaskConfig struct {
	Image            string
	Command          string
	Args             []string
	Entrypoint       []string
	WorkDir          string
	Hostname         string
	ForcePull        bool
	ImagePullTimeout time.Duration
	Runtime          string
	Privileged       bool
	CapAdd           []string
	CapDrop          []string
	ReadonlyRootfs   bool
	PidsLimit        int64
	PIDMode          string
	IPCMode          string
	Labels           map[string]string
	Mounts           []Mount
	Network          NetworkConfig
	Auth             *image.Auth // never logged or persisted
	AuthSoftFail     bool
	TrustPrefix      string
	Platform         string // "os/arch[/variant]" instead of this machine's
	Load             string // archive to load the image from, relative to the task dir
	// PullOnly (pull_only): the task pulls and verifies its image and
	// exits 0 without a container; the options that shape a container are
	// ignored.
	PullOnly bool
	Security TaskSecurity
	// CDIDevices are fully qualified CDI device names (vendor.com/class=name).
	CDIDevices []string
	Limits     TaskLimits
	// UserNSMode is "auto" (a user namespace of its own), "host" or ""
	// (the plugin's userns.default).
	UserNSMode string
}

// parseTaskConfig validates a decoded task config on its own; checks that
// need the plugin config (gates, allow lists) happen in buildTask.
func parseTaskConfig(raw rawTaskConfig) (*TaskConfig, error) {
	tc := &TaskConfig{
		Image:          strings.TrimSpace(raw.Image),
		Command:        raw.Command,
		Args:           raw.Args,
		Entrypoint:     raw.Entrypoint,
		WorkDir:        raw.WorkDir,
		Hostname:       raw.Hostname,
		ForcePull:      raw.ForcePull,
		Runtime:        raw.Runtime,
		Privileged:     raw.Privileged,
		CapAdd:         raw.CapAdd,
		CapDrop:        raw.CapDrop,
		ReadonlyRootfs: raw.ReadonlyRootfs,
		PIDMode:        raw.PIDMode,
		IPCMode:        raw.IPCMode,
		Auth:           taskAuth(raw.Auth),
		AuthSoftFail:   raw.AuthSoftFail,
		TrustPrefix:    raw.TrustPrefix,
		Platform:       raw.Platform,
		Load:           raw.Load,
		PullOnly:       raw.PullOnly,
		UserNSMode:     raw.UserNSMode,
	}
	if err := checkUserNSMode("userns_mode", tc.UserNSMode, true); err != nil {
		return nil, err
	}
	if tc.Image == "" {
		return nil, fmt.Errorf("image: must name an image such as %q, got an empty value", "docker.io/library/redis:7")
	}
	if raw.Cwd != "" {
		if raw.WorkDir != "" && raw.WorkDir != raw.Cwd {
			return nil, fmt.Errorf("work_dir: %q and its alias cwd %q disagree; set only one", raw.WorkDir, raw.Cwd)
		}
		tc.WorkDir = raw.Cwd
	}
	if tc.WorkDir != "" && !strings.HasPrefix(tc.WorkDir, "/") {
		return nil, fmt.Errorf("work_dir: %q must be an absolute path inside the container", tc.WorkDir)
	}
	if tc.WorkDir != "" && executor.UnderProc(tc.WorkDir) {
		return nil, fmt.Errorf("work_dir: %q is refused: it is under /proc", tc.WorkDir)
	}
	if raw.ImagePullTimeout != "" {
		d, err := positiveDuration("image_pull_timeout", raw.ImagePullTimeout)
		if err != nil {
			return nil, err
		}
		tc.ImagePullTimeout = d
	}
	if tc.Platform != "" {
		if _, err := platforms.Parse(tc.Platform); err != nil {
			return nil, fmt.Errorf("platform: %q is not a platform such as %q", tc.Platform, "linux/arm64")
		}
	}
	if tc.Load != "" && filepath.IsAbs(tc.Load) {
		return nil, fmt.Errorf("load: %q must be a path relative to the task directory, such as %q", tc.Load, "local/image.tar")
	}
	var err error
	if tc.PidsLimit, err = wholeNumber("pids_limit", raw.PidsLimit); err != nil {
		return nil, err
	}
	if tc.PidsLimit < 0 {
		return nil, fmt.Errorf("pids_limit: %d must be zero (no limit) or positive", tc.PidsLimit)
	}
	for field, v := range map[string]string{"pid_mode": tc.PIDMode, "ipc_mode": tc.IPCMode} {
		if v != "" {
			if err := checkMode(field, v); err != nil {
				return nil, err
			}
		}
	}
	if tc.Hostname != "" {
		if err := checkHostname(tc.Hostname); err != nil {
			return nil, err
		}
	}
	labels, err := flattenMaps("labels", raw.Labels)
	if err != nil {
		return nil, err
	}
	for k := range labels {
		if strings.HasPrefix(k, labelPrefix) {
			return nil, fmt.Errorf("labels: %q uses the prefix %q that the driver reserves", k, labelPrefix)
		}
	}
	tc.Labels = labels
	if tc.Mounts, err = parseMounts(raw.mounts()); err != nil {
		return nil, err
	}
	if tc.Network, err = parseNetworkConfig(raw.network()); err != nil {
		return nil, err
	}
	if tc.Security, err = parseTaskSecurity(raw.security()); err != nil {
		return nil, err
	}
	if tc.CDIDevices, err = parseCDIDevices(raw.CDIDevices); err != nil {
		return nil, err
	}
	if tc.Limits, err = parseTaskLimits(raw.limits()); err != nil {
		return nil, err
	}
	return tc, nil
}

func checkHostname(h string) error {
	if len(h) > 63 {
		return fmt.Errorf("hostname: %q is longer than 63 characters", h)
	}
	for _, r := range h {
		if !nameChar(r) || r == '_' {
			return fmt.Errorf("hostname: %q may only hold letters, digits, '-' and '.'", h)
		}
	}
	return nil
}

// mounts is the task's mount options, for parseMounts.
func (r rawTaskConfig) mounts() rawMounts {
	return rawMounts{Volumes: r.Volumes, Mount: r.Mount, Mounts: r.Mounts, Bind: r.Bind, BindReadOnly: r.BindReadOnly}
}

// network is the task's network options, for parseNetworkConfig.
func (r rawTaskConfig) network() rawNetwork {
	return rawNetwork{
		NetworkMode: r.NetworkMode, HostNetwork: r.HostNetwork, Net: r.Net,
		Ports: r.Ports, PortMap: r.PortMap,
		DNSServers: r.DNSServers, DNSSearchDomains: r.DNSSearchDomains, DNSOptions: r.DNSOptions,
		HostDNS: r.HostDNS, ExtraHosts: r.ExtraHosts,
	}
}

// security is the task's security options, for parseTaskSecurity.
func (r rawTaskConfig) security() rawTaskSecurity {
	return rawTaskSecurity{Seccomp: r.Seccomp, SeccompProfile: r.SeccompProfile, NoNewPrivileges: r.NoNewPrivileges, Sysctl: r.Sysctl, Devices: r.Devices}
}

// limits is the task's limit options, for parseTaskLimits.
func (r rawTaskConfig) limits() rawTaskLimits {
	return rawTaskLimits{
		ShmSize: r.ShmSize, Ulimit: r.Ulimit, OOMScoreAdj: r.OOMScoreAdj, Init: r.Init,
		CPUHardLimit: r.CPUHardLimit, CPUCFSPeriod: r.CPUCFSPeriod, GroupAdd: r.GroupAdd,
	}
}
