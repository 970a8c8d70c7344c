package driver

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/image"
)

// mountSpec is the shape of the docker driver's `mount` block, which also
// covers Roblox's `mounts` block (`options` instead of `readonly`).
var mountSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"type":     hclspec.NewDefault(hclspec.NewAttr("type", "string", false), hclspec.NewLiteral(`"bind"`)),
	"target":   hclspec.NewAttr("target", "string", false),
	"source":   hclspec.NewAttr("source", "string", false),
	"readonly": hclspec.NewDefault(hclspec.NewAttr("readonly", "bool", false), hclspec.NewLiteral("false")),
	"options":  hclspec.NewAttr("options", "list(string)", false),
	"bind_options": hclspec.NewBlock("bind_options", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"propagation": hclspec.NewAttr("propagation", "string", false),
	})),
	"tmpfs_options": hclspec.NewBlock("tmpfs_options", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"size": hclspec.NewAttr("size", "number", false),
		"mode": hclspec.NewAttr("mode", "number", false),
	})),
})

// taskConfigSpec is the `config` block of a task. Names follow Nomad's
// docker driver; Roblox's containerd-driver, exec2 and rkt names are
// accepted as aliases and folded into one field by decodeTaskConfig.
var taskConfigSpec = hclspec.NewObject(withSpecs(securityTaskSpec, map[string]*hclspec.Spec{
	"image":              hclspec.NewAttr("image", "string", true),
	"command":            hclspec.NewAttr("command", "string", false),
	"args":               hclspec.NewAttr("args", "list(string)", false),
	"entrypoint":         hclspec.NewAttr("entrypoint", "list(string)", false),
	"work_dir":           hclspec.NewAttr("work_dir", "string", false),
	"cwd":                hclspec.NewAttr("cwd", "string", false),
	"hostname":           hclspec.NewAttr("hostname", "string", false),
	"force_pull":         hclspec.NewAttr("force_pull", "bool", false),
	"image_pull_timeout": hclspec.NewAttr("image_pull_timeout", "string", false),
	"runtime":            hclspec.NewAttr("runtime", "string", false),
	"privileged":         hclspec.NewAttr("privileged", "bool", false),
	"cap_add":            hclspec.NewAttr("cap_add", "list(string)", false),
	"cap_drop":           hclspec.NewAttr("cap_drop", "list(string)", false),
	"readonly_rootfs":    hclspec.NewAttr("readonly_rootfs", "bool", false),
	"pids_limit":         hclspec.NewAttr("pids_limit", "number", false),
	"pid_mode":           hclspec.NewAttr("pid_mode", "string", false),
	"ipc_mode":           hclspec.NewAttr("ipc_mode", "string", false),
	"labels":             hclspec.NewAttr("labels", "list(map(string))", false),
	"volumes":            hclspec.NewAttr("volumes", "list(string)", false),
	"mount":              hclspec.NewBlockList("mount", mountSpec),
	"mounts":             hclspec.NewBlockList("mounts", mountSpec),
	"bind":               hclspec.NewAttr("bind", "list(map(string))", false),
	"bind_read_only":     hclspec.NewAttr("bind_read_only", "list(map(string))", false),
	"network_mode":       hclspec.NewAttr("network_mode", "string", false),
	"host_network":       hclspec.NewAttr("host_network", "bool", false),
	"net":                hclspec.NewAttr("net", "list(string)", false),
	"ports":              hclspec.NewAttr("ports", "list(string)", false),
	"port_map":           hclspec.NewAttr("port_map", "list(map(string))", false),
	"dns_servers":        hclspec.NewAttr("dns_servers", "list(string)", false),
	"dns_search_domains": hclspec.NewAttr("dns_search_domains", "list(string)", false),
	"dns_options":        hclspec.NewAttr("dns_options", "list(string)", false),
	"host_dns":           hclspec.NewDefault(hclspec.NewAttr("host_dns", "bool", false), hclspec.NewLiteral("true")),
	"extra_hosts":        hclspec.NewAttr("extra_hosts", "list(string)", false),
	"auth":               taskAuthSpec,
	"auth_soft_fail":     hclspec.NewAttr("auth_soft_fail", "bool", false),
	"trust_prefix":       hclspec.NewAttr("trust_prefix", "string", false),
	"platform":           hclspec.NewAttr("platform", "string", false),
	"load":               hclspec.NewAttr("load", "string", false),
}))

// rawTaskConfig is the task config as decoded from taskConfigSpec.
type rawTaskConfig struct {
	Image            string              `codec:"image"`
	Command          string              `codec:"command"`
	Args             []string            `codec:"args"`
	Entrypoint       []string            `codec:"entrypoint"`
	WorkDir          string              `codec:"work_dir"`
	Cwd              string              `codec:"cwd"`
	Hostname         string              `codec:"hostname"`
	ForcePull        bool                `codec:"force_pull"`
	ImagePullTimeout string              `codec:"image_pull_timeout"`
	Runtime          string              `codec:"runtime"`
	Privileged       bool                `codec:"privileged"`
	CapAdd           []string            `codec:"cap_add"`
	CapDrop          []string            `codec:"cap_drop"`
	ReadonlyRootfs   bool                `codec:"readonly_rootfs"`
	PidsLimit        any                 `codec:"pids_limit"` // see wholeNumber
	PIDMode          string              `codec:"pid_mode"`
	IPCMode          string              `codec:"ipc_mode"`
	Labels           []map[string]string `codec:"labels"`
	Volumes          []string            `codec:"volumes"`
	Mount            []rawMount          `codec:"mount"`
	Mounts           []rawMount          `codec:"mounts"`
	Bind             []map[string]string `codec:"bind"`
	BindReadOnly     []map[string]string `codec:"bind_read_only"`
	NetworkMode      string              `codec:"network_mode"`
	HostNetwork      bool                `codec:"host_network"`
	Net              []string            `codec:"net"`
	Ports            []string            `codec:"ports"`
	PortMap          []map[string]string `codec:"port_map"`
	DNSServers       []string            `codec:"dns_servers"`
	DNSSearchDomains []string            `codec:"dns_search_domains"`
	DNSOptions       []string            `codec:"dns_options"`
	HostDNS          bool                `codec:"host_dns"`
	ExtraHosts       []string            `codec:"extra_hosts"`
	Auth             rawTaskAuth         `codec:"auth"`
	AuthSoftFail     bool                `codec:"auth_soft_fail"`
	TrustPrefix      string              `codec:"trust_prefix"`
	Platform         string              `codec:"platform"`
	Load             string              `codec:"load"`
	Seccomp          *bool               `codec:"seccomp"`
	SeccompProfile   string              `codec:"seccomp_profile"`
	NoNewPrivileges  *bool               `codec:"no_new_privileges"`
	Sysctl           []map[string]string `codec:"sysctl"`
	Devices          []string            `codec:"devices"`
}

type rawMount struct {
	Type         string          `codec:"type"`
	Target       string          `codec:"target"`
	Source       string          `codec:"source"`
	ReadOnly     bool            `codec:"readonly"`
	Options      []string        `codec:"options"`
	BindOptions  rawBindOptions  `codec:"bind_options"`
	TmpfsOptions rawTmpfsOptions `codec:"tmpfs_options"`
}

type rawBindOptions struct {
	Propagation string `codec:"propagation"`
}

type rawTmpfsOptions struct {
	Size any `codec:"size"` // see wholeNumber
	Mode any `codec:"mode"`
}

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
	Security         TaskSecurity
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
	if tc.Mounts, err = parseMounts(raw); err != nil {
		return nil, err
	}
	if tc.Network, err = parseNetworkConfig(raw); err != nil {
		return nil, err
	}
	if tc.Security, err = parseTaskSecurity(raw); err != nil {
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

// flattenMaps merges HCL's list-of-maps form of a map attribute.
func flattenMaps(field string, ms []map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			if k == "" {
				return nil, fmt.Errorf("%s: keys must not be empty", field)
			}
			if old, ok := out[k]; ok && old != v {
				return nil, fmt.Errorf("%s: %q is given twice with different values", field, k)
			}
			out[k] = v
		}
	}
	return out, nil
}

// wholeNumber reads a numeric option as Nomad's msgpack encoding delivers
// it: an integer, a float, or a string for a number no float64 holds
// exactly. Only a whole number fits; anything else is an error that names
// the option, not a decoding failure of the whole config.
func wholeNumber(field string, v any) (int64, error) {
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case uint64:
		if n <= math.MaxInt64 {
			return int64(n), nil
		}
	case float64:
		if n == math.Trunc(n) && n >= math.MinInt64 && n < math.MaxInt64 {
			return int64(n), nil
		}
	}
	return 0, fmt.Errorf("%s: %v is not a whole number in range", field, v)
}
