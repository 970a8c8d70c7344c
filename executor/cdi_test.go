package executor

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeCDI injects an environment variable and a device node per device,
// as a CDI spec would, and refuses the device "bad".
type fakeCDI struct{ got []string }

func (f *fakeCDI) InjectDevices(s *specs.Spec, devices ...string) ([]string, error) {
	f.got = append(f.got, devices...)
	for _, d := range devices {
		if d == "vendor.com/x=bad" {
			return []string{d}, errors.New("unresolvable CDI devices vendor.com/x=bad")
		}
		s.Process.Env = append(s.Process.Env, "INJECTED="+d)
		s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/" + d[len("vendor.com/x="):], Type: "c", Major: 1, Minor: 3})
	}
	return nil, nil
}

func TestBuildSpecOptsCDI(t *testing.T) {
	img := ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"A=1"}}
	cases := []struct {
		name    string
		devices []string
		reg     bool
		env     []string
		nodes   []string
		err     string
	}{
		{name: "none", reg: true},
		{name: "injected after the environment and devices", devices: []string{"vendor.com/x=a", "vendor.com/x=b"}, reg: true,
			env: []string{"INJECTED=vendor.com/x=a", "INJECTED=vendor.com/x=b"}, nodes: []string{"/dev/a", "/dev/b"}},
		{name: "unknown device", devices: []string{"vendor.com/x=bad"}, reg: true, err: "failed to inject CDI devices: unresolvable CDI devices vendor.com/x=bad"},
		{name: "no registry", devices: []string{"vendor.com/x=a"}, err: `failed to inject CDI devices ["vendor.com/x=a"]: no CDI registry`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeCDI{}
			cfg := SpecConfig{Env: map[string]string{"B": "2"}, CDIDevices: tc.devices, Devices: []Device{{HostPath: "/dev/null", ContainerPath: "/dev/n", Permissions: "r"}}}
			if tc.reg {
				cfg.CDI = f
			}
			opts, err := BuildSpecOpts(img, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := namespaces.WithNamespace(context.Background(), "nomad")
			var s oci.Spec
			err = oci.ApplyOpts(ctx, nil, &containers.Container{ID: "web-1234"}, &s, opts...)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.got, tc.devices) {
				t.Fatalf("injected %q, want %q", f.got, tc.devices)
			}
			for _, e := range append([]string{"A=1", "B=2"}, tc.env...) {
				if !slices.Contains(s.Process.Env, e) {
					t.Errorf("env %q missing from %q", e, s.Process.Env)
				}
			}
			var paths []string
			for _, d := range s.Linux.Devices {
				paths = append(paths, d.Path)
			}
			for _, p := range append([]string{"/dev/n"}, tc.nodes...) {
				if !slices.Contains(paths, p) {
					t.Errorf("device %s missing from %q", p, paths)
				}
			}
		})
	}
}
