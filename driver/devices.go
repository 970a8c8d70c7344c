package driver

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"
	"golang.org/x/sys/unix"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// reservedDevices maps what Nomad's device plugins reserved for the task
// (TaskConfig.Devices) onto container devices, as Nomad's docker driver
// does: the host node at its task path with its cgroup permissions. Nomad
// scheduled these, not the job author, so allowed_devices does not gate
// them; each must still be an absolute path of a character or block
// device. The reservation's mounts and environment come to the driver in
// TaskConfig.Mounts and TaskConfig.Env, which every task honours.
func reservedDevices(cfg *drivers.TaskConfig) ([]executor.Device, error) {
	var out []executor.Device
	for i, d := range cfg.Devices {
		if d == nil {
			continue
		}
		field := fmt.Sprintf("device reservation %d", i)
		dev := executor.Device{ContainerPath: d.TaskPath, Permissions: d.Permissions}
		if dev.ContainerPath == "" {
			dev.ContainerPath = d.HostPath
		}
		if dev.Permissions == "" {
			dev.Permissions = "rwm"
		}
		if !filepath.IsAbs(d.HostPath) || !filepath.IsAbs(dev.ContainerPath) {
			return nil, fmt.Errorf("%s: host path %q and task path %q must be absolute paths, such as %q", field, d.HostPath, d.TaskPath, "/dev/nvidia0")
		}
		if err := executor.CheckMountDestination(dev.ContainerPath); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if err := checkDevicePermissions(field, dev.Permissions); err != nil {
			return nil, err
		}
		real, err := deviceNode(field, d.HostPath)
		if err != nil {
			return nil, err
		}
		dev.HostPath = real
		out = append(out, dev)
	}
	return out, nil
}

// deviceNode resolves a host device path through every symlink and checks
// that it is a character or block device node; it returns the node's path.
func deviceNode(field, given string) (string, error) {
	real, err := filepath.EvalSymlinks(given)
	if err != nil {
		return "", fmt.Errorf("%s: host device %q cannot be resolved: %w", field, given, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(real, &st); err != nil {
		return "", fmt.Errorf("%s: failed to stat host device %q: %w", field, real, err)
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFCHR && t != unix.S_IFBLK {
		return "", fmt.Errorf("%s: %q (resolved to %q) is not a device node (character or block)", field, given, real)
	}
	return real, nil
}

// checkDevicePermissions accepts device cgroup permissions: letters of
// "rwm", each at most once, at least one.
func checkDevicePermissions(field, perms string) error {
	seen := map[rune]bool{}
	for _, r := range perms {
		if !strings.ContainsRune("rwm", r) || seen[r] {
			return fmt.Errorf("%s: permissions %q must be letters of \"rwm\", each at most once", field, perms)
		}
		seen[r] = true
	}
	if perms == "" {
		return fmt.Errorf("%s: permissions are empty; give letters of \"rwm\"", field)
	}
	return nil
}
