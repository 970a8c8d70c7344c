package executor

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCheckCpusetDir(t *testing.T) {
	for _, tc := range []struct {
		dir, err string
	}{
		{"/sys/fs/cgroup/cpuset/nomad/shared", ""},
		{"/sys/fs/cgroup/cpuset/nomad/reserved/0b1c-web", ""},
		{"/sys/fs/cgroup/nomad.slice/0b1c.web.scope", ""},
		{"sys/fs/cgroup/cpuset/nomad/shared", "clean absolute path"},
		{"/sys/fs/cgroup", "clean absolute path"},
		{"/sys/fs/cgroup/", "clean absolute path"},
		{"/sys/fs/cgroupx/nomad", "clean absolute path"},
		{"/sys/fs/cgroup/cpuset/../../../etc", "clean absolute path"},
		{"/sys/fs/cgroup/cpuset/nomad/shared/", "clean absolute path"},
		{"/tmp/cpuset", "clean absolute path"},
	} {
		err := checkCpusetDir(tc.dir)
		if tc.err == "" {
			if err != nil {
				t.Errorf("%q: unexpected error %v", tc.dir, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.dir) {
			t.Errorf("%q: error %v, want one naming the path and %q", tc.dir, err, tc.err)
		}
	}
}

func TestCgroupKind(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fsType  int64
		unified bool
		err     bool
	}{
		{"v1", 0x27e0eb, false, false},
		{"v2", 0x63677270, true, false},
		{"tmpfs", 0x01021994, false, true},
		{"ext4", 0xef53, false, true},
	} {
		unified, err := cgroupKind("/sys/fs/cgroup/x", tc.fsType)
		if (err != nil) != tc.err || unified != tc.unified {
			t.Errorf("%s: unified %v, error %v; want %v, error %v", tc.name, unified, err, tc.unified, tc.err)
		}
	}
}

func TestCpusetSpecOpts(t *testing.T) {
	for _, tc := range []struct {
		name string
		cs   *Cpuset
		want string
	}{
		{"v2: below the scope", &Cpuset{dir: "/sys/fs/cgroup/nomad.slice/0b1c.web.scope", unified: true}, "/nomad.slice/0b1c.web.scope/web-0b1c"},
		{"v1: containerd's", &Cpuset{dir: "/sys/fs/cgroup/cpuset/nomad/shared"}, "/nomad/web-0b1c"},
		{"none: containerd's", nil, "/nomad/web-0b1c"},
	} {
		s := &specs.Spec{Linux: &specs.Linux{CgroupsPath: "/nomad/web-0b1c"}}
		if err := oci.ApplyOpts(context.Background(), nil, nil, s, tc.cs.specOpts("web-0b1c")...); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if s.Linux.CgroupsPath != tc.want {
			t.Errorf("%s: cgroupsPath %q, want %q", tc.name, s.Linux.CgroupsPath, tc.want)
		}
	}
}

func TestOpenCpuset(t *testing.T) {
	cs, err := OpenCpuset("")
	if cs != nil || err != nil {
		t.Fatalf("no path: got %v, %v; want no cpuset and no error", cs, err)
	}
	// nil and v2 cpusets move nothing
	if err := cs.join(1); err != nil {
		t.Errorf("join on no cpuset: %v", err)
	}
	if err := (&Cpuset{dir: "/nonexistent", unified: true}).join(1); err != nil {
		t.Errorf("join on v2: %v", err)
	}
	if err := (&Cpuset{dir: "/nonexistent"}).join(1); err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("join on a missing v1 cgroup: error %v, want one naming it", err)
	}
	if _, err := OpenCpuset("/sys/fs/cgroup/ndc-no-such-cgroup"); err == nil || !strings.Contains(err.Error(), "ndc-no-such-cgroup") {
		t.Errorf("missing cgroup: error %v, want one naming it", err)
	}
}

func TestCpusetCopyToSkips(t *testing.T) {
	// a missing source cgroup would fail the copy: these never read it
	for _, tc := range []struct {
		name string
		cs   *Cpuset
		path string
	}{
		{"no cpuset", nil, "/nomad/web-1"},
		{"v2", &Cpuset{dir: "/sys/fs/cgroup/ndc-none/x.scope", unified: true}, "/ndc-none/x.scope/web-1"},
		{"systemd cgroups path", &Cpuset{dir: "/sys/fs/cgroup/cpuset/ndc-none/shared"}, "system.slice:nomad:web-1"},
		{"no cgroups path", &Cpuset{dir: "/sys/fs/cgroup/cpuset/ndc-none/shared"}, ""},
	} {
		if err := tc.cs.copyTo(tc.path); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	err := (&Cpuset{dir: "/sys/fs/cgroup/cpuset/ndc-none/shared"}).copyTo("/nomad/web-1")
	if err == nil || !strings.Contains(err.Error(), "ndc-none/shared") {
		t.Errorf("v1 copy from a missing cgroup: error %v, want one naming it", err)
	}
}
