package executor

import (
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/shoenig/test/must"
)

func TestUserNSOpts(t *testing.T) {
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1 << 31, Size: 65536}}
	sysfs := specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}}
	sysBind := specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
	for _, tc := range []struct {
		name    string
		mapping []specs.LinuxIDMapping
		userNS  bool
		sys     specs.Mount
	}{
		{name: "host user namespace", mapping: nil, sys: sysfs},
		{name: "own user namespace", mapping: m, userNS: true, sys: sysBind},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := BuildSpecOpts(ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{})
			must.NoError(t, err)
			opts = append(opts, userNSOpts(tc.mapping)...)
			ctx := namespaces.WithNamespace(context.Background(), "nomad")
			var s oci.Spec
			must.NoError(t, oci.ApplyOpts(ctx, nil, &containers.Container{ID: "web-1234"}, &s, opts...))
			var hasUserNS bool
			for _, ns := range s.Linux.Namespaces {
				hasUserNS = hasUserNS || ns.Type == specs.UserNamespace
			}
			must.Eq(t, tc.userNS, hasUserNS)
			must.Eq(t, tc.mapping, s.Linux.UIDMappings)
			must.Eq(t, tc.mapping, s.Linux.GIDMappings)
			must.Eq(t, tc.sys, mountAt(t, &s, "/sys"))
		})
	}
}

// Binds marked idmap get the user namespace's mapping; in the host's user
// namespace the mark is dropped; other mounts are left as they are.
func TestIDMappedMounts(t *testing.T) {
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1 << 31, Size: 65536}}
	marked := specs.Mount{Destination: "/local", Type: "bind", Source: "/alloc/web/local", Options: []string{"rbind", "rw", IDMapOption, "rprivate"}}
	plain := specs.Mount{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "ro", "rprivate"}}
	for _, tc := range []struct {
		name    string
		mapping []specs.LinuxIDMapping
		mount   specs.Mount
		want    specs.Mount
	}{
		{name: "own user namespace, marked", mapping: m, mount: marked,
			want: specs.Mount{Destination: "/local", Type: "bind", Source: "/alloc/web/local", Options: []string{"rbind", "rw", IDMapOption, "rprivate"}, UIDMappings: m, GIDMappings: m}},
		{name: "host user namespace, marked", mapping: nil, mount: marked,
			want: specs.Mount{Destination: "/local", Type: "bind", Source: "/alloc/web/local", Options: []string{"rbind", "rw", "rprivate"}}},
		{name: "own user namespace, not marked", mapping: m, mount: plain, want: plain},
		{name: "host user namespace, not marked", mapping: nil, mount: plain, want: plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := BuildSpecOpts(ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{Mounts: []specs.Mount{tc.mount}})
			must.NoError(t, err)
			opts = append(opts, userNSOpts(tc.mapping)...)
			ctx := namespaces.WithNamespace(context.Background(), "nomad")
			var s oci.Spec
			must.NoError(t, oci.ApplyOpts(ctx, nil, &containers.Container{ID: "web-1234"}, &s, opts...))
			must.Eq(t, tc.want, mountAt(t, &s, tc.mount.Destination))
			must.Eq(t, []string{"rbind", "rw", IDMapOption, "rprivate"}, marked.Options, must.Sprint("the caller's options were changed"))
		})
	}
}
