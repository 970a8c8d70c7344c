package executor

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// CDIInjector applies the edits of Container Device Interface devices to a
// spec: the device nodes with their cgroup rules, and the environment,
// mounts and hooks their CDI specs name. A *cdi.Cache of
// tags.cncf.io/container-device-interface is one.
type CDIInjector interface {
	InjectDevices(spec *specs.Spec, devices ...string) ([]string, error)
}

// withCDIDevices injects fully qualified CDI devices (vendor.com/class=name)
// as containerd's pkg/cdi does, from the driver's own registry (its spec
// directories are the plugin's) instead of the process-wide default one. It
// runs after the environment, mounts and devices are set, so that none of
// them undoes an edit.
func withCDIDevices(reg CDIInjector, devices []string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if reg == nil {
			return fmt.Errorf("failed to inject CDI devices %q: no CDI registry", devices)
		}
		if _, err := reg.InjectDevices(s, devices...); err != nil {
			return fmt.Errorf("failed to inject CDI devices: %w", err)
		}
		return nil
	}
}
