package driver

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/nomad/drivers/shared/capabilities"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// Config is the validated, typed plugin configuration.
type Config struct {
	Address           string
	Namespace         string
	Runtime           string
	AllowRuntimes     []string
	Snapshotter       string
	RegistryConfigDir string
	ImagePullTimeout  time.Duration
	AllowPrivileged   bool
	AllowCaps         []string
	AllowHostPID      bool
	AllowHostIPC      bool
	VolumesEnabled    bool
	AllowedHostPaths  []string
	StatsInterval     time.Duration
	NoPivotRoot       bool
	DefaultPIDMode    string
	DefaultIPCMode    string
	// DefaultNetworkMode is the mode of a task that names none and is not
	// in a group network namespace: host, none, bridge (the default: a task
	// is isolated unless the job or the operator asks for the host) or
	// cni/<name>.
	DefaultNetworkMode netMode
	// CreateGroupNetwork makes the driver create the network namespaces
	// of task groups with a network mode of their own (groupnet.go).
	CreateGroupNetwork bool
	CNI                network.Config
	Images             ImageConfig
	Containers         ContainerGC
	Security           SecurityConfig
	CDI                CDIConfig
	Limits             LimitsConfig
	Logging            LoggingConfig
	UserNS             UserNSConfig
}

var knownSnapshotters = []string{"overlayfs", "native", "stargz", "btrfs", "zfs", "devmapper", "fuse-overlayfs"}

// parseConfig validates the decoded plugin config. Every error names the
// field, the value and what is allowed.
func parseConfig(raw rawConfig) (*Config, error) {
	c := &Config{
		Address:           raw.Address,
		Namespace:         raw.Namespace,
		Runtime:           raw.Runtime,
		AllowRuntimes:     raw.AllowRuntimes,
		Snapshotter:       raw.Snapshotter,
		RegistryConfigDir: raw.RegistryConfigDir,
		AllowPrivileged:   raw.AllowPrivileged,
		AllowCaps:         raw.AllowCaps,
		AllowHostPID:      raw.AllowHostPID,
		AllowHostIPC:      raw.AllowHostIPC,
		VolumesEnabled:    raw.Volumes.Enabled,
		AllowedHostPaths:  raw.Volumes.AllowedHostPaths,
		NoPivotRoot:       raw.NoPivotRoot,
		DefaultPIDMode:    raw.DefaultPIDMode,
		DefaultIPCMode:    raw.DefaultIPCMode,
	}
	c.CreateGroupNetwork = raw.CreateGroupNetwork
	var err error
	if c.Address == "" {
		return nil, fmt.Errorf("address: must be the path of containerd's socket, got an empty value")
	}
	if err := checkNamespace(c.Namespace); err != nil {
		return nil, err
	}
	if c.Runtime == "" {
		return nil, fmt.Errorf("runtime: must name a containerd runtime such as %q, got an empty value", "io.containerd.runc.v2")
	}
	if len(c.AllowRuntimes) > 0 && !slices.Contains(c.AllowRuntimes, c.Runtime) {
		return nil, fmt.Errorf("runtime: %q is not in allow_runtimes %q", c.Runtime, c.AllowRuntimes)
	}
	if !slices.Contains(knownSnapshotters, c.Snapshotter) {
		return nil, fmt.Errorf("snapshotter: %q is not one of %s", c.Snapshotter, strings.Join(knownSnapshotters, ", "))
	}
	if c.RegistryConfigDir != "" && !filepath.IsAbs(c.RegistryConfigDir) {
		return nil, fmt.Errorf("registry_config_dir: %q must be an absolute path", c.RegistryConfigDir)
	}
	if c.ImagePullTimeout, err = positiveDuration("image_pull_timeout", raw.ImagePullTimeout); err != nil {
		return nil, err
	}
	if c.StatsInterval, err = positiveDuration("stats_interval", raw.StatsInterval); err != nil {
		return nil, err
	}
	if bad := capabilities.Supported().Difference(capabilities.New(c.AllowCaps)); !bad.Empty() {
		return nil, fmt.Errorf("allow_caps: %s not supported by this system; allowed are Linux capability names such as %q", bad, "CHOWN")
	}
	for _, p := range c.AllowedHostPaths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("volumes.allowed_host_paths: %q must be an absolute path", p)
		}
	}
	if err := checkMode("default_pid_mode", c.DefaultPIDMode); err != nil {
		return nil, err
	}
	if err := checkMode("default_ipc_mode", c.DefaultIPCMode); err != nil {
		return nil, err
	}
	if c.DefaultPIDMode == modeHost && !c.AllowHostPID {
		return nil, fmt.Errorf("default_pid_mode: %q needs allow_host_pid = true", modeHost)
	}
	if c.DefaultIPCMode == modeHost && !c.AllowHostIPC {
		return nil, fmt.Errorf("default_ipc_mode: %q needs allow_host_ipc = true", modeHost)
	}
	if raw.DefaultNetMode == "" {
		raw.DefaultNetMode = network.BuiltinNetwork
	}
	if c.DefaultNetworkMode, err = parseNetMode("default_network_mode", raw.DefaultNetMode); err != nil {
		return nil, err
	}
	if c.CNI, err = parseCNIConfig(raw.CNI); err != nil {
		return nil, err
	}
	if c.Images, err = parseImageConfig(rawImageOptions{Auth: raw.Auth, PullActivityTimeout: raw.PullActivityTimeout, Trust: raw.Trust, GC: raw.GC}); err != nil {
		return nil, err
	}
	if c.Containers, err = parseContainerGC(raw.GC); err != nil {
		return nil, err
	}
	if c.CDI, err = parseCDIConfig(raw.CDI); err != nil {
		return nil, err
	}
	if c.Security, err = parseSecurityConfig(rawSecurityConfig{
		AllowUnconfinedSeccomp: raw.AllowUnconfinedSeccomp,
		AllowedSeccompProfiles: raw.AllowedSeccompProfiles,
		NoNewPrivileges:        raw.NoNewPrivileges,
		AllowedDevices:         raw.AllowedDevices,
	}); err != nil {
		return nil, err
	}
	if c.Limits, err = parseLimitsConfig(raw.InitPath, raw.AllowNegativeOOMScoreAdj); err != nil {
		return nil, err
	}
	if c.Logging, err = parseLoggingConfig(raw.Logging); err != nil {
		return nil, err
	}
	if c.UserNS, err = parseUserNSConfig(raw.UserNS); err != nil {
		return nil, err
	}
	return c, nil
}

func checkNamespace(ns string) error {
	if ns == "" {
		return fmt.Errorf("namespace: must be a containerd namespace such as %q, got an empty value", "nomad")
	}
	if !validName(ns) {
		return fmt.Errorf("namespace: %q may only hold letters, digits, '.', '-' and '_'", ns)
	}
	return nil
}

// parseCNIConfig validates the cni block; empty fields take network's
// defaults (the schema gives the same ones).
func parseCNIConfig(raw rawCNIConfig) (network.Config, error) {
	nc := network.Config{ConfDir: raw.ConfDir, BridgeName: raw.BridgeName, Subnet: raw.Subnet, NetNSDir: raw.NetNSDir}
	if raw.BinDir != "" {
		nc.BinDirs = filepath.SplitList(raw.BinDir)
	}
	return nc.Validate()
}
