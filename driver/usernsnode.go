package driver

import (
	"slices"
	"strconv"
	"strings"

	rspecfeatures "github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"
)

// usernsMissing is what a node lacks for userns_mode = "auto", from the
// snapshotter's capabilities, the runtime's features (containerd's runc
// shim passes on `runc features`) and the kernel's release: the image's
// layers mounted idmapped needs the snapshotter's "remap-ids" (containerd's
// overlayfs says so when the kernel has idmapped overlay mounts); Nomad's
// directories mounted idmapped need runc's idmap mount extension (runc 1.2
// and later) and, for the secrets directory, which Nomad makes a tmpfs,
// idmapped tmpfs mounts (Linux 6.3). Empty when nothing is missing.
func usernsMissing(snapshotterCaps []string, features any, kernelRelease string) []string {
	var missing []string
	if !slices.Contains(snapshotterCaps, "remap-ids") {
		missing = append(missing, "snapshotter remap-ids")
	}
	if !runtimeIDMapMounts(features) {
		missing = append(missing, "runtime idmap mounts (runc 1.2 or later)")
	}
	if !kernelAtLeast(kernelRelease, 6, 3) {
		missing = append(missing, "kernel 6.3 or later (idmapped tmpfs)")
	}
	return missing
}

// UserNSMissing is what this node lacks for userns_mode = "auto", from the
// snapshotter's capabilities and the runtime's features as containerd
// reports them (GetSnapshotterCapabilities, RuntimeInfo) and the kernel's
// release; empty when nothing is missing. The fingerprint's
// driver.containerd.userns.missing lists the same.
func UserNSMissing(snapshotterCaps []string, runtimeFeatures any) []string {
	return usernsMissing(snapshotterCaps, runtimeFeatures, kernelRelease())
}

// runtimeIDMapMounts reports whether the runtime's features say it mounts
// binds idmapped.
func runtimeIDMapMounts(features any) bool {
	f, _ := features.(*rspecfeatures.Features)
	if f == nil || f.Linux == nil || f.Linux.MountExtensions == nil || f.Linux.MountExtensions.IDMap == nil {
		return false
	}
	e := f.Linux.MountExtensions.IDMap.Enabled
	return e != nil && *e
}

// kernelAtLeast compares a kernel release ("6.18.44-fc-v1272") with
// major.minor; a release it cannot read is not.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err := strconv.Atoi(parts[0])
	if err != nil {
		return false
	}
	digits := strings.IndexFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if digits >= 0 {
		parts[1] = parts[1][:digits]
	}
	mn, err := strconv.Atoi(parts[1])
	if err != nil {
		return false
	}
	return maj > major || (maj == major && mn >= minor)
}

// kernelRelease is this machine's kernel release (uname -r); "" when
// unknown.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
