package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// InitPath is where SpecConfig.Init appears in the container: the path
// docker gives its own init, so that process lists read the same.
const InitPath = "/sbin/docker-init"

// withInit runs args under the init binary bound read-only at InitPath,
// as `docker-init -- args...`: it is PID 1, forwards signals to the task
// and reaps the task's orphaned children.
func withInit(hostPath string, args []string) ([]string, []oci.SpecOpts) {
	m := specs.Mount{Type: "bind", Source: hostPath, Destination: InitPath, Options: []string{"rbind", "ro", "nosuid", "nodev"}}
	return append([]string{InitPath, "--"}, args...),
		[]oci.SpecOpts{oci.WithoutMounts(InitPath), oci.WithMounts([]specs.Mount{m})}
}

// limitOpts sets the process limits of the container: rlimits, the OOM
// score adjustment and a CFS quota. Exec'd processes copy the container's
// process settings, so they share the rlimits and OOM score adjustment.
func limitOpts(cfg SpecConfig) []oci.SpecOpts {
	var opts []oci.SpecOpts
	if len(cfg.Rlimits) > 0 {
		opts = append(opts, withRlimits(cfg.Rlimits))
	}
	if cfg.OOMScoreAdj != nil {
		opts = append(opts, withOOMScoreAdj(*cfg.OOMScoreAdj))
	}
	if cfg.CPUQuota > 0 {
		opts = append(opts, oci.WithCPUCFS(cfg.CPUQuota, cfg.CPUPeriod))
	}
	return opts
}

// checkLimits refuses limits the kernel would refuse at start.
func checkLimits(cfg SpecConfig) error {
	if cfg.ShmSize < 0 {
		return fmt.Errorf("shm size %d must not be negative", cfg.ShmSize)
	}
	if cfg.CPUQuota < 0 || (cfg.CPUQuota > 0 && cfg.CPUPeriod == 0) {
		return fmt.Errorf("cpu quota %d needs a positive quota and period (period %d)", cfg.CPUQuota, cfg.CPUPeriod)
	}
	for _, l := range cfg.Rlimits {
		if l.Soft > l.Hard {
			return fmt.Errorf("rlimit %s: soft limit %d is above hard limit %d", l.Type, l.Soft, l.Hard)
		}
	}
	return nil
}

// withRlimits sets each rlimit, replacing the default spec's entry of the
// same type.
func withRlimits(limits []specs.POSIXRlimit) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		for _, l := range limits {
			s.Process.Rlimits = slices.DeleteFunc(s.Process.Rlimits, func(r specs.POSIXRlimit) bool { return r.Type == l.Type })
			s.Process.Rlimits = append(s.Process.Rlimits, l)
		}
		return nil
	}
}

func withOOMScoreAdj(adj int) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.OOMScoreAdj = &adj
		return nil
	}
}

// groupAddOpts appends the supplementary groups: numeric GIDs as they
// are, names looked up in the image's /etc/group. Names need the
// container's root filesystem, so only Create applies them.
func groupAddOpts(cfg SpecConfig) []oci.SpecOpts {
	if len(cfg.GroupAdd) == 0 {
		return nil
	}
	add := oci.WithAppendAdditionalGroups(cfg.GroupAdd...)
	return []oci.SpecOpts{func(ctx context.Context, c oci.Client, ctr *containers.Container, s *oci.Spec) error {
		if err := add(ctx, c, ctr, s); err != nil {
			return fmt.Errorf("group_add: %w (a group name must be in the image's /etc/group)", lookupError(err))
		}
		return nil
	}}
}

// lookupError is containerd's own "unable to find group" error inside
// err, without the temporary mount it was read through; else err.
func lookupError(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.HasPrefix(e.Error(), "unable to find group") {
			return e
		}
	}
	return err
}
