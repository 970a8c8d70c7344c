package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestBuildSpecOptsLimits(t *testing.T) {
	adj := 500
	cases := []struct {
		name  string
		cfg   SpecConfig
		check func(t *testing.T, s *specs.Spec)
	}{
		{name: "shm size rounds up to KiB", cfg: SpecConfig{ShmSize: 64*1024*1024 + 1}, check: func(t *testing.T, s *specs.Spec) {
			m := mountAt(t, s, "/dev/shm")
			if !slices.Contains(m.Options, "size=65537k") || slices.Contains(m.Options, "size=65536k") {
				t.Errorf("/dev/shm options = %v", m.Options)
			}
		}},
		{name: "shm size default", cfg: SpecConfig{}, check: func(t *testing.T, s *specs.Spec) {
			if m := mountAt(t, s, "/dev/shm"); !slices.Contains(m.Options, "size=65536k") {
				t.Errorf("/dev/shm options = %v", m.Options)
			}
		}},
		{name: "shm size under a task's own /dev/shm", cfg: SpecConfig{ShmSize: 1024, Mounts: []specs.Mount{{Destination: "/dev/shm", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=2m"}}}},
			check: func(t *testing.T, s *specs.Spec) {
				if m := mountAt(t, s, "/dev/shm"); !reflect.DeepEqual(m.Options, []string{"size=2m"}) {
					t.Errorf("/dev/shm options = %v", m.Options)
				}
			}},
		{name: "rlimits replace the default nofile", cfg: SpecConfig{Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 100, Hard: 200}, {Type: "RLIMIT_NPROC", Soft: 7, Hard: 7}}},
			check: func(t *testing.T, s *specs.Spec) {
				want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 100, Hard: 200}, {Type: "RLIMIT_NPROC", Soft: 7, Hard: 7}}
				if !reflect.DeepEqual(s.Process.Rlimits, want) {
					t.Errorf("rlimits = %+v, want %+v", s.Process.Rlimits, want)
				}
			}},
		{name: "oom score adj", cfg: SpecConfig{OOMScoreAdj: &adj}, check: func(t *testing.T, s *specs.Spec) {
			if s.Process.OOMScoreAdj == nil || *s.Process.OOMScoreAdj != 500 {
				t.Errorf("oom_score_adj = %v", s.Process.OOMScoreAdj)
			}
		}},
		{name: "no oom score adj unless asked", cfg: SpecConfig{}, check: func(t *testing.T, s *specs.Spec) {
			if s.Process.OOMScoreAdj != nil {
				t.Errorf("oom_score_adj = %d", *s.Process.OOMScoreAdj)
			}
		}},
		{name: "cfs quota", cfg: SpecConfig{CPUQuota: 50000, CPUPeriod: 100000}, check: func(t *testing.T, s *specs.Spec) {
			c := s.Linux.Resources.CPU
			if c == nil || c.Quota == nil || *c.Quota != 50000 || c.Period == nil || *c.Period != 100000 {
				t.Errorf("cpu = %+v", c)
			}
		}},
		{name: "init wraps the command", cfg: SpecConfig{Init: "/usr/bin/tini-static", Command: []string{"sh", "-c", "true"}}, check: func(t *testing.T, s *specs.Spec) {
			if want := []string{InitPath, "--", "sh", "-c", "true"}; !reflect.DeepEqual(s.Process.Args, want) {
				t.Errorf("args = %v, want %v", s.Process.Args, want)
			}
			m := mountAt(t, s, InitPath)
			if m.Source != "/usr/bin/tini-static" || !slices.Contains(m.Options, "ro") || slices.Contains(m.Options, "noexec") {
				t.Errorf("init mount = %+v", m)
			}
		}},
		{name: "init mount wins over a task mount at its path", cfg: SpecConfig{Init: "/usr/bin/tini-static", Mounts: []specs.Mount{{Destination: InitPath, Type: "bind", Source: "/bin/false"}}},
			check: func(t *testing.T, s *specs.Spec) {
				if m := mountAt(t, s, InitPath); m.Source != "/usr/bin/tini-static" {
					t.Errorf("init mount = %+v", m)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, c.cfg))
		})
	}
}

func TestBuildSpecOptsLimitsRejects(t *testing.T) {
	cases := []struct {
		name string
		cfg  SpecConfig
		want string
	}{
		{name: "negative shm", cfg: SpecConfig{ShmSize: -1}, want: "shm size -1"},
		{name: "quota without period", cfg: SpecConfig{CPUQuota: 1000}, want: "cpu quota 1000"},
		{name: "soft above hard", cfg: SpecConfig{Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1}}}, want: "rlimit RLIMIT_NOFILE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := BuildSpecOpts(ocispec.ImageConfig{Cmd: []string{"sh"}}, c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestGroupAddOpts(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\nvideo:x:44:\napp:x:1000:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	apply := func(groups ...string) (*specs.Spec, error) {
		s := &oci.Spec{Root: &specs.Root{Path: root}, Process: &specs.Process{}}
		ctx := namespaces.WithNamespace(context.Background(), "nomad")
		return s, oci.ApplyOpts(ctx, nil, &containers.Container{ID: "web-1234"}, s, groupAddOpts(SpecConfig{GroupAdd: groups})...)
	}
	s, err := apply("video", "2000", "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []uint32{44, 2000, 1000} {
		if !slices.Contains(s.Process.User.AdditionalGids, g) {
			t.Errorf("additional gids %v miss %d", s.Process.User.AdditionalGids, g)
		}
	}
	if _, err := apply("nosuch"); err == nil || !strings.Contains(err.Error(), "group_add") || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("err = %v, want one naming group_add and the group", err)
	}
	wrapped := fmt.Errorf("mount callback failed on /tmp/m: %w", errors.New("unable to find group g"))
	if got := lookupError(wrapped).Error(); got != "unable to find group g" {
		t.Errorf("lookupError = %q", got)
	}
	if other := errors.New("disk on fire"); lookupError(other) != other {
		t.Errorf("lookupError changed an unrelated error")
	}
	if opts := groupAddOpts(SpecConfig{}); opts != nil {
		t.Errorf("options without groups: %d", len(opts))
	}
}

func mountAt(t *testing.T, s *specs.Spec, dst string) specs.Mount {
	t.Helper()
	var found []specs.Mount
	for _, m := range s.Mounts {
		if m.Destination == dst {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d mounts at %s: %+v", len(found), dst, s.Mounts)
	}
	return found[0]
}
