package executor

import (
	"context"
	"slices"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// The container's own user namespace (SpecConfig.UserNS): its IDs map onto
// a host range, for users and groups alike. The root filesystem is the
// image's snapshot with the same mapping in its labels
// (containerd.io/snapshot/uidmapping and gidmapping): a snapshotter with
// idmap support (overlayfs on a kernel with idmapped overlay mounts) mounts
// the layers idmapped, copying nothing; another one gets a copy of the
// image chowned into the range, made once per image and range.

// newSnapshot is the container's snapshot option: a plain snapshot of the
// image, or one with the user namespace's ID mapping.
func newSnapshot(id string, img client.Image, m []specs.LinuxIDMapping) client.NewContainerOpts {
	if len(m) == 0 {
		return client.WithNewSnapshot(id, img)
	}
	return client.WithNewSnapshot(id, img, client.WithUserNSRemapperLabels(m, m))
}

// IDMapOption in a bind mount's options marks it for the container's ID
// mapping (see withIDMappedMounts).
const IDMapOption = "idmap"

// userNSOpts puts the process in a new user namespace with the mapping;
// the mounts marked IDMapOption get the mapping too.
func userNSOpts(m []specs.LinuxIDMapping) []oci.SpecOpts {
	if len(m) == 0 {
		return []oci.SpecOpts{withIDMappedMounts(nil)}
	}
	return []oci.SpecOpts{oci.WithUserNamespace(m, m), withSysBind, withIDMappedMounts(m)}
}

// withIDMappedMounts mounts the binds marked IDMapOption idmapped with the
// user namespace's own mapping (the OCI mount's uidMappings and
// gidMappings, which runc 1.2 and later applies with mount_setattr): a file
// on disk owned by host ID n is seen inside as n, and what the task's n
// writes is owned on disk by host ID n, as without a user namespace. The
// mapping covers the top mount of the bind, not mounts below it. In the
// host's user namespace the mapping would be the identity: the mark is
// dropped. The driver stages its marked binds first (StageIDMapped), so
// that runc gets plain binds; this covers the marks left.
func withIDMappedMounts(m []specs.LinuxIDMapping) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for i, mnt := range s.Mounts {
			if !slices.Contains(mnt.Options, IDMapOption) {
				continue
			}
			if len(m) == 0 {
				s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(mnt.Options), func(o string) bool { return o == IDMapOption })
				continue
			}
			s.Mounts[i].UIDMappings = slices.Clone(m)
			s.Mounts[i].GIDMappings = slices.Clone(m)
		}
		return nil
	}
}

// withSysBind replaces the /sys mount with a read-only bind of the host's:
// a new sysfs may only be mounted in a network namespace that the user
// namespace owns, and the task's (the host's, CNI's or Nomad's group
// namespace) is the host user namespace's.
func withSysBind(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	for i, m := range s.Mounts {
		if m.Destination == "/sys" && m.Type == "sysfs" {
			s.Mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys",
				Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
		}
	}
	return nil
}
