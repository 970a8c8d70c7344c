package executor

import (
	"context"
	"fmt"
	"maps"
	"path"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Device is a host device made available in the container.
type Device struct {
	// HostPath is the device node on the host, symlinks already resolved.
	HostPath string
	// ContainerPath is where it appears in the container.
	ContainerPath string
	// Permissions is the device cgroup access: a subset of "rwm".
	Permissions string
}

// UnderProc reports whether an absolute container path is /proc or below.
func UnderProc(p string) bool {
	p = path.Clean(p)
	return p == "/proc" || strings.HasPrefix(p, "/proc/")
}

// CheckMountDestination refuses a mount destination that is not absolute,
// is the root, or is /proc or below it: a mount there would hide the masked
// and read-only /proc paths that keep the host's kernel interfaces out of
// reach.
func CheckMountDestination(dst string) error {
	if !path.IsAbs(dst) {
		return fmt.Errorf("mount destination %q is not an absolute path", dst)
	}
	if path.Clean(dst) == "/" {
		return fmt.Errorf("mount destination %q is refused: it would replace the root filesystem", dst)
	}
	if UnderProc(dst) {
		return fmt.Errorf("mount destination %q is refused: it is under /proc, whose masked and read-only paths must stay", dst)
	}
	return nil
}

func withSysctl(kv map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		maps.Copy(s.Linux.Sysctl, kv)
		return nil
	}
}

func withSeccomp(profile *specs.LinuxSeccomp) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		p := *profile
		s.Linux.Seccomp = &p
		return nil
	}
}
