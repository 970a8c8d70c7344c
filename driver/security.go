package driver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// SecurityConfig is the validated security part of the plugin config.
type SecurityConfig struct {
	// AllowUnconfinedSeccomp lets a task run without a seccomp filter, or
	// with a profile from its own allocation (which could allow anything).
	AllowUnconfinedSeccomp bool
	// AllowedSeccompProfiles are host profile files, or directories of
	// them, that a task's seccomp_profile may name.
	AllowedSeccompProfiles []string
	// NoNewPrivileges refuses a task's no_new_privileges = false.
	NoNewPrivileges bool
	// AllowedDevices are host device paths or globs a task may map.
	AllowedDevices []string
}

// rawSecurityConfig is the security part of the plugin config.
type rawSecurityConfig struct {
	AllowUnconfinedSeccomp bool
	AllowedSeccompProfiles []string
	NoNewPrivileges        bool
	AllowedDevices         []string
}

// parseSecurityConfig validates the security options of the plugin config.
func parseSecurityConfig(raw rawSecurityConfig) (SecurityConfig, error) {
	sc := SecurityConfig{
		AllowUnconfinedSeccomp: raw.AllowUnconfinedSeccomp,
		AllowedSeccompProfiles: raw.AllowedSeccompProfiles,
		NoNewPrivileges:        raw.NoNewPrivileges,
		AllowedDevices:         raw.AllowedDevices,
	}
	for _, p := range sc.AllowedSeccompProfiles {
		if !filepath.IsAbs(p) {
			return sc, fmt.Errorf("allowed_seccomp_profiles: %q must be an absolute path of a profile or a directory of profiles", p)
		}
	}
	for _, p := range sc.AllowedDevices {
		if !filepath.IsAbs(p) {
			return sc, fmt.Errorf("allowed_devices: %q must be an absolute device path or glob such as %q", p, "/dev/fuse")
		}
		if _, err := filepath.Match(p, ""); err != nil {
			return sc, fmt.Errorf("allowed_devices: %q is not a valid glob: %v", p, err)
		}
	}
	return sc, nil
}

// TaskSecurity is the task's validated security options.
type TaskSecurity struct {
	// Seccomp is Roblox's switch: nil or true keep a profile, false asks
	// for none.
	Seccomp         *bool
	SeccompProfile  string // "unconfined" or a path (relative: in the task dir)
	NoNewPrivileges *bool  // nil: on
	Sysctl          map[string]string
	Devices         []DeviceRequest
}

// DeviceRequest is one entry of the task's devices.
type DeviceRequest struct {
	Field         string
	HostPath      string
	ContainerPath string
	Permissions   string
}

// rawTaskSecurity is the security part of a task's config.
type rawTaskSecurity struct {
	Seccomp         *bool
	SeccompProfile  string
	NoNewPrivileges *bool
	Sysctl          []map[string]string
	Devices         []string
}

func parseTaskSecurity(raw rawTaskSecurity) (TaskSecurity, error) {
	ts := TaskSecurity{Seccomp: raw.Seccomp, SeccompProfile: raw.SeccompProfile, NoNewPrivileges: raw.NoNewPrivileges}
	if raw.Seccomp != nil && !*raw.Seccomp && ts.SeccompProfile != "" && ts.SeccompProfile != executor.SeccompUnconfined {
		return ts, fmt.Errorf("seccomp: false disagrees with seccomp_profile %q; set only one", ts.SeccompProfile)
	}
	var err error
	if ts.Sysctl, err = flattenMaps("sysctl", raw.Sysctl); err != nil {
		return ts, err
	}
	for k, v := range ts.Sysctl {
		if err := checkSysctlSyntax(k, v); err != nil {
			return ts, err
		}
	}
	for i, d := range raw.Devices {
		dr, err := parseDevice(fmt.Sprintf("devices[%d]", i), d)
		if err != nil {
			return ts, err
		}
		ts.Devices = append(ts.Devices, dr)
	}
	return ts, nil
}

// parseDevice reads "host_path[:container_path[:permissions]]".
func parseDevice(field, v string) (DeviceRequest, error) {
	parts := strings.Split(v, ":")
	if len(parts) > 3 {
		return DeviceRequest{}, fmt.Errorf("%s: %q must be \"host_path[:container_path[:permissions]]\"", field, v)
	}
	d := DeviceRequest{Field: field, HostPath: parts[0], ContainerPath: parts[0], Permissions: "rwm"}
	if len(parts) > 1 {
		d.ContainerPath = parts[1]
	}
	if len(parts) > 2 {
		d.Permissions = parts[2]
	}
	if !filepath.IsAbs(d.HostPath) || !filepath.IsAbs(d.ContainerPath) {
		return d, fmt.Errorf("%s: %q needs absolute host and container paths, such as %q", field, v, "/dev/fuse")
	}
	if err := executor.CheckMountDestination(d.ContainerPath); err != nil {
		return d, fmt.Errorf("%s: %w", field, err)
	}
	if d.Permissions == "" {
		return d, fmt.Errorf("%s: permissions in %q are empty; give letters of \"rwm\"", field, v)
	}
	return d, checkDevicePermissions(field, d.Permissions)
}

// Namespaced sysctls, as runc and docker allow them: System V IPC and
// POSIX message queues (the IPC namespace), the network namespace's net.*,
// and the UTS namespace's domain name.
var ipcSysctls = []string{"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}

func checkSysctlSyntax(k, v string) error {
	for _, seg := range strings.Split(k, ".") {
		if seg == "" || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
			return fmt.Errorf("sysctl: key %q must be dot-separated names such as %q", k, "net.core.somaxconn")
		}
	}
	if strings.ContainsAny(v, "\n\x00") {
		return fmt.Errorf("sysctl: value of %q must be one line", k)
	}
	return nil
}

// checkSysctl allows only keys of namespaces the task does not share with
// the host: writing any other would change the whole machine.
func checkSysctl(k string, ownNetNS, hostIPC bool) error {
	switch {
	case slices.Contains(ipcSysctls, k) || strings.HasPrefix(k, "fs.mqueue."):
		if hostIPC {
			return fmt.Errorf("sysctl: %q is refused: the task shares the host's IPC namespace (ipc_mode = \"host\")", k)
		}
		return nil
	case strings.HasPrefix(k, "net."):
		if !ownNetNS {
			return fmt.Errorf("sysctl: %q is refused: the task uses the host's network namespace", k)
		}
		return nil
	case k == "kernel.domainname":
		return nil
	case k == "kernel.hostname":
		return fmt.Errorf("sysctl: %q is refused: set the task option hostname instead", k)
	}
	return fmt.Errorf("sysctl: %q is refused: it is not namespaced and would change the host; allowed are net.* (with a network namespace of the task's own), %s, fs.mqueue.* and kernel.domainname", k, strings.Join(ipcSysctls, ", "))
}

// planSecurity applies the plugin's gates to the task's security options
// and sets them on the spec.
func planSecurity(sc SecurityConfig, ts TaskSecurity, taskDir string, ownNetNS bool, s *executor.SpecConfig) error {
	if ts.NoNewPrivileges != nil && !*ts.NoNewPrivileges {
		if sc.NoNewPrivileges {
			return fmt.Errorf("no_new_privileges: false is refused: the plugin sets no_new_privileges = true for every task")
		}
		s.NewPrivileges = true
	}
	for k := range ts.Sysctl {
		if err := checkSysctl(k, ownNetNS, s.HostIPC); err != nil {
			return err
		}
	}
	s.Sysctl = ts.Sysctl
	for _, d := range ts.Devices {
		dev, err := sc.allowDevice(d)
		if err != nil {
			return err
		}
		s.Devices = append(s.Devices, dev)
	}
	return planSeccomp(sc, ts, taskDir, s)
}

// allowDevice resolves a device request's host path through every symlink
// and checks the device node against allowed_devices. Device nodes live in
// the host's /dev, which tasks cannot write, so the path is not pinned.
func (sc SecurityConfig) allowDevice(d DeviceRequest) (executor.Device, error) {
	if len(sc.AllowedDevices) == 0 {
		return executor.Device{}, fmt.Errorf("%s: host device %q is refused: the plugin's allowed_devices is empty", d.Field, d.HostPath)
	}
	real, err := deviceNode(d.Field, d.HostPath)
	if err != nil {
		return executor.Device{}, err
	}
	for _, p := range sc.AllowedDevices {
		if ok, _ := filepath.Match(p, real); ok {
			return executor.Device{HostPath: real, ContainerPath: d.ContainerPath, Permissions: d.Permissions}, nil
		}
		if pr, err := filepath.EvalSymlinks(p); err == nil && pr == real {
			return executor.Device{HostPath: real, ContainerPath: d.ContainerPath, Permissions: d.Permissions}, nil
		}
	}
	return executor.Device{}, fmt.Errorf("%s: host device %q (resolved to %q) is not in the plugin's allowed_devices %q", d.Field, d.HostPath, real, sc.AllowedDevices)
}

// maxSeccompProfile bounds what is read from a profile file.
const maxSeccompProfile = 1 << 20

// planSeccomp chooses the task's seccomp profile: containerd's default
// unless the task names one. Running unconfined needs
// allow_unconfined_seccomp. A profile file must lie under
// allowed_seccomp_profiles, or else needs allow_unconfined_seccomp too:
// a profile the task wrote itself could allow every system call.
func planSeccomp(sc SecurityConfig, ts TaskSecurity, taskDir string, s *executor.SpecConfig) error {
	unconfined := ts.SeccompProfile == executor.SeccompUnconfined || (ts.Seccomp != nil && !*ts.Seccomp)
	if unconfined {
		if !sc.AllowUnconfinedSeccomp {
			return fmt.Errorf("seccomp: running without a seccomp profile is refused: the plugin needs allow_unconfined_seccomp = true")
		}
		s.SeccompProfile = executor.SeccompUnconfined
		return nil
	}
	if ts.SeccompProfile == "" {
		return nil
	}
	path := ts.SeccompProfile
	if !filepath.IsAbs(path) {
		path = filepath.Join(taskDir, path)
	}
	var p pins
	defer p.close()
	pin, err := p.open(path)
	if err != nil {
		return fmt.Errorf("seccomp_profile: %q cannot be opened: %w", ts.SeccompProfile, err)
	}
	if !sc.AllowUnconfinedSeccomp && !underAny(pin.real, sc.AllowedSeccompProfiles) {
		return fmt.Errorf("seccomp_profile: %q (resolved to %q) is refused: it is not under the plugin's allowed_seccomp_profiles %q", ts.SeccompProfile, pin.real, sc.AllowedSeccompProfiles)
	}
	profile, err := readSeccompProfile(pin.file)
	if err != nil {
		return fmt.Errorf("seccomp_profile: %q: %w", ts.SeccompProfile, err)
	}
	s.Seccomp = profile
	return nil
}

// readSeccompProfile reads, through the pinned descriptor, a profile in
// the OCI runtime spec's linux.seccomp form. Unknown fields are refused:
// docker's profile format has conditions (includes, excludes) that this
// form would silently drop, allowing more than intended.
func readSeccompProfile(pinned *os.File) (*specs.LinuxSeccomp, error) {
	f, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", pinned.Fd()))
	if err != nil {
		return nil, fmt.Errorf("failed to open: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("is not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSeccompProfile+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read: %w", err)
	}
	if len(data) > maxSeccompProfile {
		return nil, fmt.Errorf("is larger than %d bytes", maxSeccompProfile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var profile specs.LinuxSeccomp
	if err := dec.Decode(&profile); err != nil {
		return nil, fmt.Errorf("is not a seccomp profile in the OCI runtime spec's linux.seccomp form: %v", err)
	}
	if profile.DefaultAction == "" {
		return nil, fmt.Errorf("has no defaultAction")
	}
	return &profile, nil
}
