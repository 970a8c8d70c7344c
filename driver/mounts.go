package driver

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// Mount is one task-requested mount, from any of the option forms that
// request one (volumes, mount, mounts, bind, bind_read_only).
type Mount struct {
	Field    string // the option it came from, for error messages
	Type     string // "bind" or "tmpfs"
	Source   string
	Target   string
	ReadOnly bool
	// IDMap asks for the bind to be mapped with the task's user namespace
	// (see idmapped); it is the rule already for sources inside the
	// allocation.
	IDMap   bool
	Options []string
}

var propagationModes = []string{"private", "rprivate", "shared", "rshared", "slave", "rslave"}

// parseMounts folds every mount form of the task config into one list and
// checks its syntax. Host-path policy is applied later by resolveMounts.
// rawMounts is the task's mount options, in all their forms.
type rawMounts struct {
	Volumes      []string
	Mount        []rawMount
	Mounts       []rawMount
	Bind         []map[string]string
	BindReadOnly []map[string]string
}

func parseMounts(raw rawMounts) ([]Mount, error) {
	var out []Mount
	for i, v := range raw.Volumes {
		m, err := parseVolume(fmt.Sprintf("volumes[%d]", i), v)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for _, blocks := range []struct {
		name string
		list []rawMount
	}{{"mount", raw.Mount}, {"mounts", raw.Mounts}} {
		for i, rm := range blocks.list {
			m, err := parseMountBlock(fmt.Sprintf("%s[%d]", blocks.name, i), rm)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	for _, set := range []struct {
		name string
		maps []map[string]string
		ro   bool
	}{{"bind", raw.Bind, false}, {"bind_read_only", raw.BindReadOnly, true}} {
		binds, err := flattenMaps(set.name, set.maps)
		if err != nil {
			return nil, err
		}
		hosts := make([]string, 0, len(binds))
		for h := range binds {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		for _, h := range hosts {
			m := Mount{Field: fmt.Sprintf("%s[%q]", set.name, h), Type: "bind", Source: h, Target: binds[h], ReadOnly: set.ro}
			if err := checkMount(m); err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// parseVolume reads the docker form "source:target[:opt,opt]".
func parseVolume(field, v string) (Mount, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Mount{}, fmt.Errorf("%s: %q must be \"source:target\" or \"source:target:options\"", field, v)
	}
	m := Mount{Field: field, Type: "bind", Source: parts[0], Target: parts[1]}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch {
			case o == "ro":
				m.ReadOnly = true
			case o == "rw":
			case o == executor.IDMapOption:
				m.IDMap = true
			case slices.Contains(propagationModes, o):
				m.Options = append(m.Options, o)
			default:
				return Mount{}, fmt.Errorf("%s: option %q in %q is not ro, rw, idmap or a propagation mode (%s)", field, o, v, strings.Join(propagationModes, ", "))
			}
		}
	}
	return m, checkMount(m)
}

func parseMountBlock(field string, rm rawMount) (Mount, error) {
	m := Mount{Field: field, Type: rm.Type, Source: rm.Source, Target: rm.Target, ReadOnly: rm.ReadOnly, IDMap: rm.IDMap}
	if m.Type == "" {
		m.Type = "bind"
	}
	for _, o := range rm.Options {
		switch {
		case o == "ro" || o == "readonly":
			m.ReadOnly = true
		case o == "rw" || o == "bind" || o == "rbind":
		case o == executor.IDMapOption:
			m.IDMap = true
		default:
			m.Options = append(m.Options, o)
		}
	}
	if p := rm.BindOptions.Propagation; p != "" {
		if !slices.Contains(propagationModes, p) {
			return Mount{}, fmt.Errorf("%s: bind_options.propagation %q is not one of %s", field, p, strings.Join(propagationModes, ", "))
		}
		m.Options = append(m.Options, p)
	}
	size, err := wholeNumber(field+": tmpfs_options.size", rm.TmpfsOptions.Size)
	if err != nil {
		return Mount{}, err
	}
	mode, err := wholeNumber(field+": tmpfs_options.mode", rm.TmpfsOptions.Mode)
	if err != nil {
		return Mount{}, err
	}
	if size > 0 || mode > 0 {
		if m.Type != "tmpfs" {
			return Mount{}, fmt.Errorf("%s: tmpfs_options given for a mount of type %q", field, m.Type)
		}
		if size > 0 {
			m.Options = append(m.Options, fmt.Sprintf("size=%d", size))
		}
		if mode > 0 {
			m.Options = append(m.Options, fmt.Sprintf("mode=%o", mode))
		}
	}
	return m, checkMount(m)
}

func checkMount(m Mount) error {
	switch m.Type {
	case "bind":
		if m.Source == "" {
			return fmt.Errorf("%s: a bind mount needs a source", m.Field)
		}
	case "tmpfs":
		if m.IDMap {
			return fmt.Errorf("%s: idmap applies to bind mounts only, not to type %q", m.Field, m.Type)
		}
	default:
		return fmt.Errorf("%s: type %q is not supported; allowed are \"bind\" and \"tmpfs\"", m.Field, m.Type)
	}
	if !filepath.IsAbs(m.Target) {
		return fmt.Errorf("%s: target %q must be an absolute path inside the container", m.Field, m.Target)
	}
	if err := executor.CheckMountDestination(m.Target); err != nil {
		return fmt.Errorf("%s: %w", m.Field, err)
	}
	return checkTarget(m.Field, m.Target, m.Target)
}

// resolveMounts applies the host-path policy and turns task mounts into OCI
// mounts. Relative sources resolve inside the task directory. Each source
// is opened and pinned (see pins), and the policy judges the path the
// kernel reached through every symlink, so neither "..", a symlink planted
// in the task dir, nor a path swapped after the check (pins.verify) reaches
// the host. A source inside the allocation directory is judged by the
// allocation boundary (see allocBoundary) and needs no opt-in; any other
// host path needs volumes.enabled and, when set, an allowed prefix.
func resolveMounts(ms []Mount, taskDir, allocDir string, c *Config, p *pins) ([]specs.Mount, error) {
	b, err := newAllocBoundary(allocDir, taskDir)
	if err != nil {
		return nil, err
	}
	var out []specs.Mount
	for _, m := range ms {
		if m.Type == "tmpfs" {
			out = append(out, specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: m.Target,
				Options: append([]string{"nosuid", "nodev", rwOption(m.ReadOnly)}, m.Options...)})
			continue
		}
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(taskDir, src)
		}
		pin, err := p.open(src)
		if err != nil {
			return nil, fmt.Errorf("%s: source %q cannot be resolved: %w", m.Field, m.Source, err)
		}
		inAlloc := b.contains(pin.real)
		if inAlloc {
			err = b.checkSource(m.Field, m.Source, pin.real, m.ReadOnly)
		} else {
			err = c.allowHostPath(m.Field, m.Source, pin.real)
		}
		if err != nil {
			return nil, err
		}
		p.bind(m.Field, m.Target, pin)
		if m.ReadOnly {
			p.readOnly(m.Target)
		}
		out = append(out, bindMount(pin.real, m.Target, m.ReadOnly, idmapped(inAlloc || m.IDMap, m.Options)...))
	}
	return out, nil
}

// allowHostPath is the plugin's gate for binds of host paths.
func (c *Config) allowHostPath(field, given, real string) error {
	if !c.VolumesEnabled {
		return fmt.Errorf("%s: host path %q is refused: binding host paths needs plugin option volumes.enabled = true", field, given)
	}
	if len(c.AllowedHostPaths) == 0 || underAny(real, c.AllowedHostPaths) {
		return nil
	}
	return fmt.Errorf("%s: host path %q (resolved to %q) is outside volumes.allowed_host_paths %q", field, given, real, c.AllowedHostPaths)
}

func rwOption(ro bool) string {
	if ro {
		return "ro"
	}
	return "rw"
}

func bindMount(src, dst string, ro bool, extra ...string) specs.Mount {
	opts := append([]string{"rbind", rwOption(ro)}, extra...)
	if !slices.ContainsFunc(extra, func(o string) bool { return slices.Contains(propagationModes, o) }) {
		opts = append(opts, "rprivate")
	}
	return specs.Mount{Type: "bind", Source: src, Destination: dst, Options: opts}
}

// nomadMounts are the task directories and the volume_mounts Nomad asks
// for: first the ones that go before the task's binds, then alloc/logs,
// which goes after everything else so that no bind can cover it. It is
// read-only so a task cannot tamper with its log files (pins.verify checks
// that it is). The task directories are pinned like task binds and must
// stay inside the allocation: alloc/ is shared by the allocation's tasks,
// and one of them swapping alloc/logs for a symlink must not bind a host
// directory into the next. Nomad's volume_mounts (host volumes, CSI)
// follow Nomad's rules.
func nomadMounts(cfg *drivers.TaskConfig, p *pins) (first []specs.Mount, last specs.Mount, err error) {
	td := cfg.TaskDir()
	allocReal, err := filepath.EvalSymlinks(cfg.AllocDir)
	if err != nil {
		return nil, last, fmt.Errorf("failed to resolve the allocation directory: %w", err)
	}
	var ms []specs.Mount
	for _, d := range []struct {
		host, target string
		ro           bool
	}{
		{td.SharedAllocDir, allocMountPath, false},
		{td.LocalDir, localMountPath, false},
		{td.SecretsDir, secretsMountPath, false},
		{td.LogDir, logsMountPath, true},
	} {
		pin, err := p.open(d.host)
		if err != nil {
			return nil, last, fmt.Errorf("failed to open task directory %s: %w", d.target, err)
		}
		if !isUnder(pin.real, allocReal) {
			return nil, last, fmt.Errorf("task directory %s: %q resolves to %q, outside the allocation directory: refused", d.target, d.host, pin.real)
		}
		p.bind("task directory "+d.target, d.target, pin)
		if d.ro {
			p.readOnly(d.target)
		}
		ms = append(ms, bindMount(pin.real, d.target, d.ro, executor.IDMapOption))
	}
	last, ms = ms[len(ms)-1], ms[:len(ms)-1]
	for _, m := range cfg.Mounts {
		ms = append(ms, bindMount(m.HostPath, m.TaskPath, m.Readonly, propagation(m.PropagationMode)))
	}
	return ms, last, nil
}

// idmapped adds the mark that maps a bind with the task's user namespace
// when on. The rule: what belongs to the allocation (Nomad's task
// directories, binds of sources inside the allocation, the driver's hosts
// and resolv.conf) is mapped, so that what the task's root writes there is
// owned by the host's root and its uid 1000 by 1000, as without a user
// namespace, and Nomad and the operator can read and remove it. Host paths
// (volumes, bind, mount) and Nomad's volume_mounts keep the host's
// ownership unless a mount asks for idmap: a root-owned host file stays out
// of the task's reach.
func idmapped(on bool, opts []string) []string {
	if !on {
		return opts
	}
	return append(slices.Clone(opts), executor.IDMapOption)
}

// propagation maps Nomad's volume_mount propagation modes to mount options.
func propagation(mode string) string {
	switch mode {
	case "host-to-task":
		return "rslave"
	case "bidirectional":
		return "rshared"
	default:
		return "rprivate"
	}
}

// bindTargetCheck is the check the executor runs on each mount target once
// it is resolved inside the image's root filesystem: the task's own mounts
// may not be redirected onto Nomad's. Nomad's own mounts (and anything
// else the driver adds) are not the task's to choose.
func bindTargetCheck(ms []Mount) func(target, resolved string) error {
	fields := map[string]string{}
	for _, m := range ms {
		fields[path.Clean(m.Target)] = m.Field
	}
	return func(target, resolved string) error {
		field, ok := fields[path.Clean(target)]
		if !ok {
			return nil
		}
		return checkTarget(field, target, resolved)
	}
}
