package driver

import (
	"github.com/hashicorp/nomad/drivers/shared/capabilities"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
)

// The schemas of the plugin block and of a task's config block, each next
// to the raw struct Nomad decodes it into, in one file as in Nomad's exec2
// driver: an option's name and default are written here and nowhere else.
// Each concern's parser (parseImageConfig, parseSecurityConfig,
// parseNetworkConfig, parseMounts, parseTaskSecurity, ...) takes only its
// own part of a raw struct, so the parsers do not depend on one another.

// configSpec is the plugin block of the Nomad agent configuration.
var configSpec = hclspec.NewObject(map[string]*hclspec.Spec{
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
	"create_group_network": hclspec.NewDefault(hclspec.NewAttr("create_group_network", "bool", false), hclspec.NewLiteral("true")),
	"cni": hclspec.NewBlock("cni", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"bin_dir":     hclspec.NewDefault(hclspec.NewAttr("bin_dir", "string", false), hclspec.NewLiteral(`"/opt/cni/bin"`)),
		"conf_dir":    hclspec.NewDefault(hclspec.NewAttr("conf_dir", "string", false), hclspec.NewLiteral(`"/etc/cni/net.d"`)),
		"bridge_name": hclspec.NewDefault(hclspec.NewAttr("bridge_name", "string", false), hclspec.NewLiteral(`"nomadctr0"`)),
		"subnet":      hclspec.NewDefault(hclspec.NewAttr("subnet", "string", false), hclspec.NewLiteral(`"172.31.0.0/16"`)),
		"netns_dir":   hclspec.NewDefault(hclspec.NewAttr("netns_dir", "string", false), hclspec.NewLiteral(`"/var/run/netns"`)),
	})),
	"cdi": hclspec.NewBlock("cdi", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"spec_dirs":       hclspec.NewDefault(hclspec.NewAttr("spec_dirs", "list(string)", false), hclspec.NewLiteral(`["/etc/cdi", "/var/run/cdi"]`)),
		"allowed_devices": hclspec.NewAttr("allowed_devices", "list(string)", false),
	})),
	// security
	"allow_unconfined_seccomp": hclspec.NewDefault(hclspec.NewAttr("allow_unconfined_seccomp", "bool", false), hclspec.NewLiteral("false")),
	"allowed_seccomp_profiles": hclspec.NewAttr("allowed_seccomp_profiles", "list(string)", false),
	"no_new_privileges":        hclspec.NewDefault(hclspec.NewAttr("no_new_privileges", "bool", false), hclspec.NewLiteral("false")),
	"allowed_devices":          hclspec.NewAttr("allowed_devices", "list(string)", false),
	"logging": hclspec.NewBlock("logging", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"collector":     hclspec.NewDefault(hclspec.NewAttr("collector", "string", false), hclspec.NewLiteral(`"driver"`)),
		"max_files":     hclspec.NewDefault(hclspec.NewAttr("max_files", "number", false), hclspec.NewLiteral("10")),
		"max_file_size": hclspec.NewDefault(hclspec.NewAttr("max_file_size", "number", false), hclspec.NewLiteral("10")),
	})),
	"userns": hclspec.NewBlock("userns", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"default":     hclspec.NewDefault(hclspec.NewAttr("default", "string", false), hclspec.NewLiteral(`"host"`)),
		"range_start": hclspec.NewDefault(hclspec.NewAttr("range_start", "number", false), hclspec.NewLiteral("2147483648")),
		"range_count": hclspec.NewDefault(hclspec.NewAttr("range_count", "number", false), hclspec.NewLiteral("268435456")),
	})),
	// limits
	"init_path":                    hclspec.NewDefault(hclspec.NewAttr("init_path", "string", false), hclspec.NewLiteral(`"/usr/bin/tini-static"`)),
	"allow_negative_oom_score_adj": hclspec.NewDefault(hclspec.NewAttr("allow_negative_oom_score_adj", "bool", false), hclspec.NewLiteral("false")),
})

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
	CreateGroupNetwork  bool            `codec:"create_group_network"`
	CNI                 rawCNIConfig    `codec:"cni"`
	CDI                 rawCDIConfig    `codec:"cdi"`
	Logging             rawLogging      `codec:"logging"`
	UserNS              rawUserNSConfig `codec:"userns"`

	AllowUnconfinedSeccomp bool     `codec:"allow_unconfined_seccomp"`
	AllowedSeccompProfiles []string `codec:"allowed_seccomp_profiles"`
	NoNewPrivileges        bool     `codec:"no_new_privileges"`
	AllowedDevices         []string `codec:"allowed_devices"`

	InitPath                 string `codec:"init_path"`
	AllowNegativeOOMScoreAdj bool   `codec:"allow_negative_oom_score_adj"`
}

type rawCNIConfig struct {
	BinDir     string `codec:"bin_dir"`
	ConfDir    string `codec:"conf_dir"`
	BridgeName string `codec:"bridge_name"`
	Subnet     string `codec:"subnet"`
	NetNSDir   string `codec:"netns_dir"`
}

type rawUserNSConfig struct {
	Default    string `codec:"default"`
	RangeStart *int64 `codec:"range_start"` // nil: no userns block
	RangeCount *int64 `codec:"range_count"`
}

type rawVolumeConfig struct {
	Enabled          bool     `codec:"enabled"`
	AllowedHostPaths []string `codec:"allowed_host_paths"`
}

// Plugin config blocks for registries and verification.
var (
	authConfigSpec = hclspec.NewBlock("auth", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"config": hclspec.NewAttr("config", "string", false),
		"helper": hclspec.NewAttr("helper", "string", false),
	}))
	trustSpec = hclspec.NewBlock("trust", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"default_policy": hclspec.NewDefault(hclspec.NewAttr("default_policy", "string", false), hclspec.NewLiteral(`"off"`)),
		"rule": hclspec.NewBlockList("rule", hclspec.NewObject(map[string]*hclspec.Spec{
			"prefix":       hclspec.NewAttr("prefix", "string", true),
			"public_keys":  hclspec.NewAttr("public_keys", "list(string)", false),
			"trusted_root": hclspec.NewAttr("trusted_root", "string", false),
			"threshold":    hclspec.NewAttr("threshold", "number", false),
			"identity": hclspec.NewBlockList("identity", hclspec.NewObject(map[string]*hclspec.Spec{
				"issuer":         hclspec.NewAttr("issuer", "string", false),
				"issuer_regexp":  hclspec.NewAttr("issuer_regexp", "string", false),
				"subject":        hclspec.NewAttr("subject", "string", false),
				"subject_regexp": hclspec.NewAttr("subject_regexp", "string", false),
			})),
			"policy": hclspec.NewDefault(hclspec.NewAttr("policy", "string", false), hclspec.NewLiteral(`"enforce"`)),
		})),
	}))
	gcSpec = hclspec.NewBlock("gc", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"image":       hclspec.NewDefault(hclspec.NewAttr("image", "bool", false), hclspec.NewLiteral("true")),
		"image_delay": hclspec.NewDefault(hclspec.NewAttr("image_delay", "string", false), hclspec.NewLiteral(`"3m"`)),
		"container":   hclspec.NewDefault(hclspec.NewAttr("container", "bool", false), hclspec.NewLiteral("true")),
		"container_grace": hclspec.NewDefault(hclspec.NewAttr("container_grace", "string", false),
			hclspec.NewLiteral(`"5m"`)),
		"disk_high":           hclspec.NewAttr("disk_high", "string", false),
		"disk_low":            hclspec.NewAttr("disk_low", "string", false),
		"disk_check_interval": hclspec.NewDefault(hclspec.NewAttr("disk_check_interval", "string", false), hclspec.NewLiteral(`"1m"`)),
		"disk_paths":          hclspec.NewAttr("disk_paths", "list(string)", false),
	}))
	// taskAuthSpec is the docker driver's task auth block.
	taskAuthSpec = hclspec.NewBlock("auth", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"username":       hclspec.NewAttr("username", "string", false),
		"password":       hclspec.NewAttr("password", "string", false),
		"email":          hclspec.NewAttr("email", "string", false),
		"server_address": hclspec.NewAttr("server_address", "string", false),
	}))
)

type rawAuthConfig struct {
	Config string `codec:"config"`
	Helper string `codec:"helper"`
}

type rawTrust struct {
	DefaultPolicy string         `codec:"default_policy"`
	Rules         []rawTrustRule `codec:"rule"`
}

type rawTrustRule struct {
	Prefix      string             `codec:"prefix"`
	PublicKeys  []string           `codec:"public_keys"`
	TrustedRoot string             `codec:"trusted_root"`
	Identities  []rawTrustIdentity `codec:"identity"`
	Threshold   int                `codec:"threshold"`
	Policy      string             `codec:"policy"`
}

type rawTrustIdentity struct {
	Issuer        string `codec:"issuer"`
	IssuerRegexp  string `codec:"issuer_regexp"`
	Subject       string `codec:"subject"`
	SubjectRegexp string `codec:"subject_regexp"`
}

type rawGC struct {
	Image          *bool  `codec:"image"`
	ImageDelay     string `codec:"image_delay"`
	Container      *bool  `codec:"container"`
	ContainerGrace string `codec:"container_grace"`
	// DiskHigh and DiskLow are percentages ("90%", "90" or 90 in HCL).
	DiskHigh          string   `codec:"disk_high"`
	DiskLow           string   `codec:"disk_low"`
	DiskCheckInterval string   `codec:"disk_check_interval"`
	DiskPaths         []string `codec:"disk_paths"`
}

type rawTaskAuth struct {
	Username      string `codec:"username"`
	Password      string `codec:"password"`
	Email         string `codec:"email"`
	ServerAddress string `codec:"server_address"`
}

// mountSpec is the shape of the docker driver's `mount` block, which also
// covers Roblox's `mounts` block (`options` instead of `readonly`).
var mountSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"type":     hclspec.NewDefault(hclspec.NewAttr("type", "string", false), hclspec.NewLiteral(`"bind"`)),
	"target":   hclspec.NewAttr("target", "string", false),
	"source":   hclspec.NewAttr("source", "string", false),
	"readonly": hclspec.NewDefault(hclspec.NewAttr("readonly", "bool", false), hclspec.NewLiteral("false")),
	"options":  hclspec.NewAttr("options", "list(string)", false),
	"idmap":    hclspec.NewDefault(hclspec.NewAttr("idmap", "bool", false), hclspec.NewLiteral("false")),
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
var taskConfigSpec = hclspec.NewObject(map[string]*hclspec.Spec{
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
	"pull_only":          hclspec.NewAttr("pull_only", "bool", false),
	// security
	"seccomp":           hclspec.NewAttr("seccomp", "bool", false),
	"seccomp_profile":   hclspec.NewAttr("seccomp_profile", "string", false),
	"no_new_privileges": hclspec.NewAttr("no_new_privileges", "bool", false),
	"sysctl":            hclspec.NewAttr("sysctl", "list(map(string))", false),
	"devices":           hclspec.NewAttr("devices", "list(string)", false),
	"cdi_devices":       hclspec.NewAttr("cdi_devices", "list(string)", false),
	// limits; shm_size is a string so that both docker's number of bytes
	// and the "64m" form decode
	"shm_size":       hclspec.NewAttr("shm_size", "string", false),
	"ulimit":         hclspec.NewAttr("ulimit", "list(map(string))", false),
	"oom_score_adj":  hclspec.NewAttr("oom_score_adj", "number", false),
	"init":           hclspec.NewAttr("init", "bool", false),
	"cpu_hard_limit": hclspec.NewAttr("cpu_hard_limit", "bool", false),
	"cpu_cfs_period": hclspec.NewDefault(hclspec.NewAttr("cpu_cfs_period", "number", false), hclspec.NewLiteral("100000")),
	"group_add":      hclspec.NewAttr("group_add", "list(string)", false),
	"userns_mode":    hclspec.NewAttr("userns_mode", "string", false),
})

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
	PullOnly         bool                `codec:"pull_only"`
	Seccomp          *bool               `codec:"seccomp"`
	SeccompProfile   string              `codec:"seccomp_profile"`
	NoNewPrivileges  *bool               `codec:"no_new_privileges"`
	Sysctl           []map[string]string `codec:"sysctl"`
	Devices          []string            `codec:"devices"`
	CDIDevices       []string            `codec:"cdi_devices"`
	ShmSize          string              `codec:"shm_size"`
	Ulimit           []map[string]string `codec:"ulimit"`
	OOMScoreAdj      any                 `codec:"oom_score_adj"` // see wholeNumber
	Init             bool                `codec:"init"`
	CPUHardLimit     bool                `codec:"cpu_hard_limit"`
	CPUCFSPeriod     any                 `codec:"cpu_cfs_period"`
	GroupAdd         []string            `codec:"group_add"`
	UserNSMode       string              `codec:"userns_mode"`
}

type rawMount struct {
	Type         string          `codec:"type"`
	Target       string          `codec:"target"`
	Source       string          `codec:"source"`
	ReadOnly     bool            `codec:"readonly"`
	IDMap        bool            `codec:"idmap"`
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
