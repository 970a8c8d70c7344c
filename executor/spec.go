package executor

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const (
	// ShimGroupAnnotation makes the runc v2 shim serve every container that
	// carries the same value from one shim process.
	ShimGroupAnnotation = "io.containerd.runc.v2.group"

	// SeccompUnconfined as SpecConfig.SeccompProfile runs without a seccomp filter.
	SeccompUnconfined = "unconfined"

	defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	linuxPlatform  = "linux"
)

// SpecConfig is everything the driver decides about a container's OCI spec,
// on top of the image's own config.
type SpecConfig struct {
	// Entrypoint replaces the image's Entrypoint when non-nil. As with docker,
	// a replaced entrypoint drops the image's Cmd unless Command is given.
	Entrypoint []string
	// Command replaces the image's Cmd when non-nil. The process argv is
	// entrypoint + command.
	Command []string
	// Env is merged over the image's Env; the task's value wins.
	Env map[string]string
	// Cwd is the working directory; "" takes the image's WorkingDir, else "/".
	Cwd string
	// User is "", "name", "uid", "uid:gid", "name:group" (or any mix of names
	// and numbers); "" takes the image's User. Numeric forms are set by
	// BuildSpecOpts; forms with a name need the container's root filesystem
	// and are resolved by Runtime.Create against the image's /etc/passwd and
	// /etc/group.
	User     string
	Hostname string
	// UserNS, when set, runs the container in a user namespace of its own
	// whose IDs (users and groups alike) map onto these host IDs; its root
	// filesystem is mapped the same way (see newSnapshot).
	UserNS []specs.LinuxIDMapping
	// Mounts are appended after the default mounts; a mount at the destination
	// of a default mount replaces it.
	Mounts []specs.Mount
	// CheckTarget, when set, is called by Runtime.Create for each mount with
	// its destination and where that destination resolves inside the image's
	// root filesystem (through the image's symlinks, as runc will); an error
	// refuses the container before it exists.
	CheckTarget func(target, resolved string) error `json:"-"`
	// Capabilities is the final bounding/effective/permitted set ("CAP_CHOWN"
	// form). nil keeps containerd's default set. Ignored when Privileged.
	Capabilities   []string
	Privileged     bool
	ReadonlyRootfs bool
	CPUShares      uint64
	CPUSetCPUs     string
	// MemoryBytes is the hard limit, or the soft reservation when
	// MemoryMaxBytes > 0 (then MemoryMaxBytes is the hard limit). Swap is
	// limited to the hard limit, so the task gets no extra swap.
	MemoryBytes    int64
	MemoryMaxBytes int64
	PidsLimit      int64
	// NetNSPath joins that network namespace. With HostNetwork false and no
	// path the container gets a new, private network namespace.
	NetNSPath   string
	HostNetwork bool
	// HostPID and HostIPC share the host's pid / ipc namespace.
	HostPID bool
	HostIPC bool
	// ShimGroup, when set, is the ShimGroupAnnotation value so that the tasks
	// of one allocation share a shim.
	ShimGroup string
	// SeccompProfile is "" for containerd's default profile,
	// SeccompUnconfined for none, or the path of a JSON profile (read when the
	// spec is generated). Ignored when Privileged (which is unconfined).
	SeccompProfile string
	// Seccomp, when set, is a profile the caller has already read and
	// checked; it wins over SeccompProfile. Ignored when Privileged.
	Seccomp *specs.LinuxSeccomp
	// NewPrivileges clears no_new_privs (set by default), so that setuid
	// binaries and file capabilities can raise the task's privileges
	// within its capability bounding set.
	NewPrivileges bool
	// Sysctl are kernel parameters of the container's own namespaces; the
	// caller checks that they are namespaced.
	Sysctl map[string]string
	// Devices are host devices made available in the container.
	Devices []Device
	// CDIDevices are fully qualified CDI device names, injected by CDI
	// after everything else that shapes the environment, mounts and
	// devices.
	CDIDevices []string
	// CDI resolves CDIDevices; it must be set when they are.
	CDI CDIInjector `json:"-"`
	// ShmSize is the size of the container's /dev/shm in bytes (rounded
	// up to KiB); 0 keeps containerd's default of 64 MiB.
	ShmSize int64
	// Rlimits replace the default spec's rlimits of the same type.
	Rlimits []specs.POSIXRlimit
	// OOMScoreAdj, when set, is the process's /proc/self/oom_score_adj.
	OOMScoreAdj *int
	// CPUQuota > 0 is a CFS quota in microseconds per CPUPeriod.
	CPUQuota  int64
	CPUPeriod uint64
	// Init is the host path of a static init binary (such as tini) to run
	// as PID 1: bound read-only at InitPath, it starts the task's command
	// after "--".
	Init string
	// GroupAdd are supplementary groups, GIDs or names of the image's
	// /etc/group (resolved by Runtime.Create).
	GroupAdd []string
}

// BuildSpecOpts turns an image config and the driver's SpecConfig into the
// containerd spec options of a Linux container. It does no I/O itself; the
// options it returns only read the host when Privileged (host devices,
// current capabilities), for Devices, or for a seccomp profile file.
//
// The first option generates containerd's default Linux spec (namespaces,
// masked and read-only /proc paths, default mounts and devices), so the
// options apply to an empty spec. The context they are applied with must
// carry a containerd namespace.
//
// A User (or image User) containing a name is not resolved here: it needs the
// container's root filesystem, so Runtime.Create appends the resolving
// options. Applied alone, such a spec keeps uid/gid 0.
func BuildSpecOpts(img ocispec.ImageConfig, cfg SpecConfig) ([]oci.SpecOpts, error) {
	args := processArgs(img, cfg)
	if len(args) == 0 {
		return nil, errors.New("no command to run: the image has no entrypoint or cmd and none was given")
	}
	cwd, err := workingDir(img, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.HostNetwork && cfg.NetNSPath != "" {
		return nil, fmt.Errorf("host network and network namespace %q are mutually exclusive", cfg.NetNSPath)
	}
	if cfg.MemoryMaxBytes > 0 && cfg.MemoryMaxBytes < cfg.MemoryBytes {
		return nil, fmt.Errorf("memory max %d is below memory %d", cfg.MemoryMaxBytes, cfg.MemoryBytes)
	}
	if cfg.MemoryBytes < 0 || cfg.MemoryMaxBytes < 0 || cfg.PidsLimit < 0 {
		return nil, errors.New("memory and pids limits must not be negative")
	}
	if err := checkLimits(cfg); err != nil {
		return nil, err
	}
	var initMount []oci.SpecOpts
	if cfg.Init != "" {
		args, initMount = withInit(cfg.Init, args)
	}

	opts := []oci.SpecOpts{
		oci.WithDefaultSpecForPlatform(linuxPlatform),
		oci.WithDefaultUnixDevices,
		oci.WithProcessArgs(args...),
		withEnv(mergeEnv(img.Env, cfg.Env)),
		oci.WithProcessCwd(cwd),
	}

	user := effectiveUser(img, cfg)
	if user != "" {
		uid, gid, numeric, err := parseNumericUser(user)
		if err != nil {
			return nil, err
		}
		if numeric {
			opts = append(opts, oci.WithUIDGID(uid, gid))
		}
	}

	if cfg.Hostname != "" {
		opts = append(opts, oci.WithHostname(cfg.Hostname))
	}
	// before the mounts: a task's own mount at /dev/shm replaces this one
	if cfg.ShmSize > 0 {
		opts = append(opts, oci.WithDevShmSize((cfg.ShmSize+1023)/1024))
	}
	for _, m := range cfg.Mounts {
		if err := CheckMountDestination(m.Destination); err != nil {
			return nil, err
		}
		m.Destination = path.Clean(m.Destination)
		opts = append(opts, oci.WithoutMounts(m.Destination), oci.WithMounts([]specs.Mount{m}))
	}
	opts = append(opts, initMount...)

	if cfg.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	} else if cfg.Capabilities != nil {
		opts = append(opts, oci.WithCapabilities(normalizeCaps(cfg.Capabilities)))
	}
	if cfg.ReadonlyRootfs {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if cfg.NewPrivileges {
		opts = append(opts, oci.WithNewPrivileges)
	}
	if len(cfg.Sysctl) > 0 {
		opts = append(opts, withSysctl(cfg.Sysctl))
	}
	for _, d := range cfg.Devices {
		opts = append(opts, oci.WithDevices(d.HostPath, d.ContainerPath, d.Permissions))
	}
	if len(cfg.CDIDevices) > 0 {
		opts = append(opts, withCDIDevices(cfg.CDI, cfg.CDIDevices))
	}

	if cfg.CPUShares > 0 {
		opts = append(opts, oci.WithCPUShares(cfg.CPUShares))
	}
	if cfg.CPUSetCPUs != "" {
		opts = append(opts, oci.WithCPUs(cfg.CPUSetCPUs))
	}
	opts = append(opts, memoryOpts(cfg)...)
	if cfg.PidsLimit > 0 {
		opts = append(opts, oci.WithPidsLimit(cfg.PidsLimit))
	}
	opts = append(opts, limitOpts(cfg)...)

	switch {
	case cfg.HostNetwork:
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
	case cfg.NetNSPath != "":
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{
			Type: specs.NetworkNamespace,
			Path: cfg.NetNSPath,
		}))
	}
	if cfg.HostPID {
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	}
	if cfg.HostIPC {
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
	}
	if cfg.ShimGroup != "" {
		opts = append(opts, oci.WithAnnotations(map[string]string{ShimGroupAnnotation: cfg.ShimGroup}))
	}

	// The default seccomp profile depends on the capabilities, so it comes last.
	if !cfg.Privileged {
		switch {
		case cfg.Seccomp != nil:
			opts = append(opts, withSeccomp(cfg.Seccomp))
		case cfg.SeccompProfile == "":
			opts = append(opts, seccomp.WithDefaultProfile())
		case cfg.SeccompProfile == SeccompUnconfined:
			opts = append(opts, oci.WithSeccompUnconfined)
		default:
			opts = append(opts, seccomp.WithProfile(cfg.SeccompProfile))
		}
	}
	return opts, nil
}

func normalizeCaps(caps []string) []string {
	out := make([]string, 0, len(caps))
	seen := make(map[string]bool, len(caps))
	for _, c := range caps {
		c = strings.ToUpper(strings.TrimSpace(c))
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

func memoryOpts(cfg SpecConfig) []oci.SpecOpts {
	limit, reservation := cfg.MemoryBytes, int64(0)
	if cfg.MemoryMaxBytes > 0 {
		limit, reservation = cfg.MemoryMaxBytes, cfg.MemoryBytes
	}
	if limit <= 0 {
		return nil
	}
	opts := []oci.SpecOpts{oci.WithMemoryLimit(uint64(limit)), oci.WithMemorySwap(limit)}
	if reservation > 0 {
		opts = append(opts, withMemoryReservation(reservation))
	}
	return opts
}

func withMemoryReservation(bytes int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		if s.Linux.Resources.Memory == nil {
			s.Linux.Resources.Memory = &specs.LinuxMemory{}
		}
		s.Linux.Resources.Memory.Reservation = &bytes
		return nil
	}
}
