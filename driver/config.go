package driver

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/nomad/drivers/shared/capabilities"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// Isolation modes for pid_mode / ipc_mode and their plugin defaults.
const (
	modePrivate = "private"
	modeHost    = "host"
)

// configSpec is the plugin block of the Nomad agent configuration.
var configSpec = hclspec.NewObject(withSpecs(securityConfigSpec, map[string]*hclspec.Spec{
	"address":               hclspec.NewDefault(hclspec.NewAttr("address", "string", false), hclspec.NewLiteral(`"/run/containerd/containerd.sock"`)),
	"namespace":             hclspec.NewDefault(hclspec.NewAttr("namespace", "string", false), hclspec.NewLiteral(`"nomad"`)),
	"runtime":               hclspec.NewDefault(hclspec.NewAttr("runtime", "string", false), hclspec.NewLiteral(`"io.containerd.runc.v2"`)),
	"allow_runtimes":        hclspec.NewDefault(hclspec.NewAttr("allow_runtimes", "list(string)", false), hclspec.NewLiteral(`["io.containerd.runc.v2"]`)),
	"snapshotter":           hclspec.NewDefault(hclspec.NewAttr("snapshotter", "string", false), hclspec.NewLiteral(`"overlayfs"`)),
	"registry_config_dir":   hclspec.NewAttr("registry_config_dir", "string", false),
	"image_pull_timeout":    hclspec.NewDefault(hclspec.NewAttr("image_pull_timeout", "string", false), hclspec.NewLiteral(`"5m"`)),
	"pull_activity_timeout": hclspec.NewDefault(hclspec.NewAttr("pull_activity_timeout", "string", false), hclspec.NewLiteral(`"2m"`)),
	"auth":                  authConfigSpec,
	"trust":                 trustSpec,
	"gc":                    gcSpec,
	"allow_privileged":      hclspec.NewDefault(hclspec.NewAttr("allow_privileged", "bool", false), hclspec.NewLiteral("false")),
	"allow_caps":            hclspec.NewDefault(hclspec.NewAttr("allow_caps", "list(string)", false), hclspec.NewLiteral(capabilities.HCLSpecLiteral)),
	"allow_host_pid":        hclspec.NewDefault(hclspec.NewAttr("allow_host_pid", "bool", false), hclspec.NewLiteral("false")),
	"allow_host_ipc":        hclspec.NewDefault(hclspec.NewAttr("allow_host_ipc", "bool", false), hclspec.NewLiteral("false")),
	"volumes": hclspec.NewBlock("volumes", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"enabled":            hclspec.NewDefault(hclspec.NewAttr("enabled", "bool", false), hclspec.NewLiteral("false")),
		"allowed_host_paths": hclspec.NewAttr("allowed_host_paths", "list(string)", false),
	})),
	"stats_interval":       hclspec.NewDefault(hclspec.NewAttr("stats_interval", "string", false), hclspec.NewLiteral(`"1s"`)),
	"no_pivot_root":        hclspec.NewDefault(hclspec.NewAttr("no_pivot_root", "bool", false), hclspec.NewLiteral("false")),
	"default_pid_mode":     hclspec.NewDefault(hclspec.NewAttr("default_pid_mode", "string", false), hclspec.NewLiteral(`"private"`)),
	"default_ipc_mode":     hclspec.NewDefault(hclspec.NewAttr("default_ipc_mode", "string", false), hclspec.NewLiteral(`"private"`)),
	"default_network_mode": hclspec.NewDefault(hclspec.NewAttr("default_network_mode", "string", false), hclspec.NewLiteral(`"bridge"`)),
	"cni": hclspec.NewBlock("cni", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"bin_dir":     hclspec.NewDefault(hclspec.NewAttr("bin_dir", "string", false), hclspec.NewLiteral(`"/opt/cni/bin"`)),
		"conf_dir":    hclspec.NewDefault(hclspec.NewAttr("conf_dir", "string", false), hclspec.NewLiteral(`"/etc/cni/net.d"`)),
		"bridge_name": hclspec.NewDefault(hclspec.NewAttr("bridge_name", "string", false), hclspec.NewLiteral(`"nomadctr0"`)),
		"subnet":      hclspec.NewDefault(hclspec.NewAttr("subnet", "string", false), hclspec.NewLiteral(`"172.31.0.0/16"`)),
		"netns_dir":   hclspec.NewDefault(hclspec.NewAttr("netns_dir", "string", false), hclspec.NewLiteral(`"/var/run/netns"`)),
	})),
}))

// withSpecs merges the options of other concerns into a schema's options.
func withSpecs(extra, base map[string]*hclspec.Spec) map[string]*hclspec.Spec {
	maps.Copy(base, extra)
	return base
}

// rawConfig is the plugin config as Nomad decodes it from configSpec.
type rawConfig struct {
	Address             string          `codec:"address"`
	Namespace           string          `codec:"namespace"`
	Runtime             string          `codec:"runtime"`
	AllowRuntimes       []string        `codec:"allow_runtimes"`
	Snapshotter         string          `codec:"snapshotter"`
	RegistryConfigDir   string          `codec:"registry_config_dir"`
	ImagePullTimeout    string          `codec:"image_pull_timeout"`
	PullActivityTimeout string          `codec:"pull_activity_timeout"`
	Auth                rawAuthConfig   `codec:"auth"`
	Trust               rawTrust        `codec:"trust"`
	GC                  rawGC           `codec:"gc"`
	AllowPrivileged     bool            `codec:"allow_privileged"`
	AllowCaps           []string        `codec:"allow_caps"`
	AllowHostPID        bool            `codec:"allow_host_pid"`
	AllowHostIPC        bool            `codec:"allow_host_ipc"`
	Volumes             rawVolumeConfig `codec:"volumes"`
	StatsInterval       string          `codec:"stats_interval"`
	NoPivotRoot         bool            `codec:"no_pivot_root"`
	DefaultPIDMode      string          `codec:"default_pid_mode"`
	DefaultIPCMode      string          `codec:"default_ipc_mode"`
	DefaultNetMode      string          `codec:"default_network_mode"`
	CNI                 rawCNIConfig    `codec:"cni"`

	AllowUnconfinedSeccomp bool     `codec:"allow_unconfined_seccomp"`
	AllowedSeccompProfiles []string `codec:"allowed_seccomp_profiles"`
	NoNewPrivileges        bool     `codec:"no_new_privileges"`
	AllowedDevices         []string `codec:"allowed_devices"`
}

type rawCNIConfig struct {
	BinDir     string `codec:"bin_dir"`
	ConfDir    string `codec:"conf_dir"`
	BridgeName string `codec:"bridge_name"`
	Subnet     string `codec:"subnet"`
	NetNSDir   string `codec:"netns_dir"`
}

type rawVolumeConfig struct {
	Enabled          bool     `codec:"enabled"`
	AllowedHostPaths []string `codec:"allowed_host_paths"`
}

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
	CNI                network.Config
	Images             ImageConfig
	Containers         ContainerGC
	Security           SecurityConfig
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
	if c.Images, err = parseImageConfig(raw); err != nil {
		return nil, err
	}
	if c.Containers, err = parseContainerGC(raw.GC); err != nil {
		return nil, err
	}
	if c.Security, err = parseSecurityConfig(raw); err != nil {
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

func checkMode(field, v string) error {
	if v != modePrivate && v != modeHost {
		return fmt.Errorf("%s: %q is not %q or %q", field, v, modePrivate, modeHost)
	}
	return nil
}

func positiveDuration(field, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration such as \"30s\" or \"5m\"", field, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: %q must be greater than zero", field, v)
	}
	return d, nil
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
