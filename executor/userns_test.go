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
