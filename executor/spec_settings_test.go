package executor

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestBuildSpecOptsDefaults(t *testing.T) {
	s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{})
	if s.Linux == nil || s.Process == nil || s.Root == nil {
		t.Fatalf("incomplete default spec: %+v", s)
	}
	if s.Linux.CgroupsPath != "/nomad/web-1234" {
		t.Errorf("cgroups path = %q", s.Linux.CgroupsPath)
	}
	if !s.Process.NoNewPrivileges {
		t.Error("no_new_privileges is off")
	}
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/sys/firmware"} {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("masked paths %v miss %s", s.Linux.MaskedPaths, p)
		}
	}
	for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger"} {
		if !slices.Contains(s.Linux.ReadonlyPaths, p) {
			t.Errorf("readonly paths %v miss %s", s.Linux.ReadonlyPaths, p)
		}
	}
	if got := mountDests(s); !reflect.DeepEqual(got, []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/run"}) {
		t.Errorf("mounts = %v", got)
	}
	if s.Root.Readonly {
		t.Error("rootfs is read-only by default")
	}
	if !hasNamespace(s, specs.NetworkNamespace, "") {
		t.Errorf("no private network namespace: %+v", s.Linux.Namespaces)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("default seccomp profile missing: %+v", s.Linux.Seccomp)
	}
	if s.Hostname != "" || len(s.Annotations) != 0 {
		t.Errorf("hostname %q annotations %v set without being asked", s.Hostname, s.Annotations)
	}
	r := s.Linux.Resources
	if r.Memory != nil || r.Pids != nil || (r.CPU != nil && (r.CPU.Shares != nil || r.CPU.Cpus != "")) {
		t.Errorf("resources set without being asked: %+v", r)
	}
	if len(r.Devices) < 2 || r.Devices[0].Allow {
		t.Errorf("device cgroup should deny all then allow the default devices: %+v", r.Devices)
	}
	if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_CHOWN") {
		t.Errorf("containerd's default capabilities missing: %v", s.Process.Capabilities.Bounding)
	}
}

func TestBuildSpecOptsHostname(t *testing.T) {
	s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{Hostname: "web-1"})
	if s.Hostname != "web-1" {
		t.Fatalf("hostname = %q", s.Hostname)
	}
}

func TestBuildSpecOptsMounts(t *testing.T) {
	alloc := specs.Mount{Destination: "/alloc", Type: "bind", Source: "/var/nomad/alloc/1/alloc", Options: []string{"rbind", "rw"}}
	shm := specs.Mount{Destination: "/dev/shm/", Type: "tmpfs", Source: "shm", Options: []string{"size=1g"}}
	resolv := specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: "/tmp/resolv.conf", Options: []string{"rbind", "ro"}}
	s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{Mounts: []specs.Mount{alloc, shm, resolv}})

	want := []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/run", "/alloc", "/dev/shm", "/etc/resolv.conf"}
	if got := mountDests(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("mounts = %v, want %v", got, want)
	}
	for _, m := range s.Mounts {
		switch m.Destination {
		case "/dev/shm":
			if !reflect.DeepEqual(m.Options, []string{"size=1g"}) {
				t.Errorf("/dev/shm not replaced: %+v", m)
			}
		case "/alloc":
			if m.Source != alloc.Source || !reflect.DeepEqual(m.Options, alloc.Options) {
				t.Errorf("/alloc = %+v", m)
			}
		}
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Error("extra mounts dropped the masked or read-only /proc paths")
	}
}

func TestBuildSpecOptsCapabilities(t *testing.T) {
	cases := []struct {
		name       string
		caps       []string
		privileged bool
		want       []string
	}{
		{name: "given set replaces defaults", caps: []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}, want: []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}},
		{name: "names are normalized", caps: []string{"chown", "cap_kill", "CHOWN"}, want: []string{"CAP_CHOWN", "CAP_KILL"}},
		{name: "empty set drops all", caps: []string{}, want: []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{Capabilities: tc.caps})
			c := s.Process.Capabilities
			for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
				if !reflect.DeepEqual(set, tc.want) {
					t.Errorf("%s = %v, want %v", name, set, tc.want)
				}
			}
			if slices.Contains(c.Bounding, "CAP_NET_RAW") {
				t.Error("CAP_NET_RAW kept from the defaults")
			}
		})
	}
}

func TestBuildSpecOptsPrivileged(t *testing.T) {
	s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{Privileged: true, Capabilities: []string{"CAP_CHOWN"}})
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("privileged keeps masked %v / read-only %v paths", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if s.Linux.Seccomp != nil {
		t.Error("privileged has a seccomp profile")
	}
	devs := s.Linux.Resources.Devices
	if len(devs) != 1 || !devs[0].Allow || devs[0].Access != "rwm" {
		t.Errorf("device cgroup = %+v, want allow all", devs)
	}
	if slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_CHOWN"}) && os.Geteuid() == 0 {
		t.Error("privileged used the given capabilities instead of all")
	}
	for _, m := range s.Mounts {
		if m.Destination == "/sys" && slices.Contains(m.Options, "ro") {
			t.Error("privileged /sys is read-only")
		}
	}
	if _, err := os.Stat("/dev/null"); err == nil {
		found := false
		for _, d := range s.Linux.Devices {
			if d.Path == "/dev/null" {
				found = true
			}
		}
		if !found {
			t.Error("host devices not added")
		}
	}
}

func TestBuildSpecOptsReadonlyRootfs(t *testing.T) {
	s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{ReadonlyRootfs: true})
	if !s.Root.Readonly {
		t.Fatal("rootfs not read-only")
	}
}

func TestBuildSpecOptsCPU(t *testing.T) {
	s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{CPUShares: 512, CPUSetCPUs: "0-1,3"})
	cpu := s.Linux.Resources.CPU
	if cpu == nil || cpu.Shares == nil || *cpu.Shares != 512 || cpu.Cpus != "0-1,3" {
		t.Fatalf("cpu = %+v", cpu)
	}
}

func TestBuildSpecOptsMemory(t *testing.T) {
	cases := []struct {
		name                       string
		memory, max                int64
		limit, swap, reservation   int64
		wantMemory, wantReservaton bool
	}{
		{name: "none"},
		{name: "hard limit", memory: 256 << 20, limit: 256 << 20, swap: 256 << 20, wantMemory: true},
		{name: "reservation and max", memory: 256 << 20, max: 1 << 30, limit: 1 << 30, swap: 1 << 30, reservation: 256 << 20, wantMemory: true, wantReservaton: true},
		{name: "max equal to memory", memory: 64 << 20, max: 64 << 20, limit: 64 << 20, swap: 64 << 20, reservation: 64 << 20, wantMemory: true, wantReservaton: true},
		{name: "max only", max: 128 << 20, limit: 128 << 20, swap: 128 << 20, wantMemory: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{MemoryBytes: tc.memory, MemoryMaxBytes: tc.max})
			m := s.Linux.Resources.Memory
			if !tc.wantMemory {
				if m != nil {
					t.Fatalf("memory = %+v, want none", m)
				}
				return
			}
			if m == nil || m.Limit == nil || *m.Limit != tc.limit {
				t.Fatalf("limit = %v, want %d", m, tc.limit)
			}
			if m.Swap == nil || *m.Swap != tc.swap {
				t.Errorf("swap = %v, want %d", m.Swap, tc.swap)
			}
			if tc.wantReservaton != (m.Reservation != nil) || (m.Reservation != nil && *m.Reservation != tc.reservation) {
				t.Errorf("reservation = %v, want %d", m.Reservation, tc.reservation)
			}
		})
	}
}

func TestBuildSpecOptsPids(t *testing.T) {
	s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{PidsLimit: 64})
	if p := s.Linux.Resources.Pids; p == nil || p.Limit == nil || *p.Limit != 64 {
		t.Fatalf("pids = %+v", p)
	}
}

func TestBuildSpecOptsNetwork(t *testing.T) {
	cases := []struct {
		name      string
		cfg       SpecConfig
		wantNetNS bool
		wantPath  string
	}{
		{name: "private", wantNetNS: true},
		{name: "host", cfg: SpecConfig{HostNetwork: true}},
		{name: "join", cfg: SpecConfig{NetNSPath: "/var/run/netns/alloc-1"}, wantNetNS: true, wantPath: "/var/run/netns/alloc-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, tc.cfg)
			var found []specs.LinuxNamespace
			for _, ns := range s.Linux.Namespaces {
				if ns.Type == specs.NetworkNamespace {
					found = append(found, ns)
				}
			}
			if !tc.wantNetNS {
				if len(found) != 0 {
					t.Fatalf("network namespaces = %+v, want none (host)", found)
				}
				return
			}
			if len(found) != 1 || found[0].Path != tc.wantPath {
				t.Fatalf("network namespaces = %+v, want one with path %q", found, tc.wantPath)
			}
			for _, typ := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.UTSNamespace, specs.IPCNamespace} {
				if !hasNamespace(s, typ, "") {
					t.Errorf("lost the private %s namespace", typ)
				}
			}
		})
	}
}

func TestBuildSpecOptsShimGroup(t *testing.T) {
	s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{ShimGroup: "alloc-5678"})
	if got := s.Annotations[ShimGroupAnnotation]; got != "alloc-5678" || ShimGroupAnnotation != "io.containerd.runc.v2.group" {
		t.Fatalf("annotations = %v", s.Annotations)
	}
}

func TestBuildSpecOptsSeccomp(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_LOG"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{SeccompProfile: profile})
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActLog {
		t.Errorf("custom profile not loaded: %+v", s.Linux.Seccomp)
	}
	s = buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{SeccompProfile: SeccompUnconfined})
	if s.Linux.Seccomp != nil {
		t.Errorf("unconfined has a profile: %+v", s.Linux.Seccomp)
	}
	// The default profile follows the capabilities: with CAP_SYS_ADMIN it
	// allows mount(2), without it it does not.
	allowsMount := func(s *specs.Spec) bool {
		for _, sc := range s.Linux.Seccomp.Syscalls {
			if sc.Action == specs.ActAllow && slices.Contains(sc.Names, "mount") {
				return true
			}
		}
		return false
	}
	if s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{}); allowsMount(s) {
		t.Error("default profile allows mount without CAP_SYS_ADMIN")
	}
	if s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, SpecConfig{Capabilities: []string{"CAP_SYS_ADMIN"}}); !allowsMount(s) {
		t.Error("default profile was computed before the capabilities were set")
	}
}

func TestBuildSpecOptsSecuritySettings(t *testing.T) {
	img := ocispec.ImageConfig{Cmd: []string{"sh"}}
	s := buildSpec(t, img, SpecConfig{})
	if !s.Process.NoNewPrivileges || len(s.Linux.Sysctl) != 0 {
		t.Fatalf("defaults: no_new_privileges %v sysctl %v", s.Process.NoNewPrivileges, s.Linux.Sysctl)
	}
	s = buildSpec(t, img, SpecConfig{NewPrivileges: true, Sysctl: map[string]string{"net.core.somaxconn": "1024"}})
	if s.Process.NoNewPrivileges {
		t.Error("NewPrivileges kept no_new_privileges")
	}
	if s.Linux.Sysctl["net.core.somaxconn"] != "1024" {
		t.Errorf("sysctl = %v", s.Linux.Sysctl)
	}

	s = buildSpec(t, img, SpecConfig{Devices: []Device{{HostPath: "/dev/zero", ContainerPath: "/dev/zero2", Permissions: "r"}}})
	var dev *specs.LinuxDevice
	for i, d := range s.Linux.Devices {
		if d.Path == "/dev/zero2" {
			dev = &s.Linux.Devices[i]
		}
	}
	if dev == nil || dev.Type != "c" || dev.Major != 1 || dev.Minor != 5 {
		t.Fatalf("device /dev/zero2 = %+v in %+v", dev, s.Linux.Devices)
	}
	last := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
	if !last.Allow || last.Access != "r" || *last.Major != 1 || *last.Minor != 5 {
		t.Errorf("device cgroup rule = %+v", last)
	}

	profile := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}}}
	s = buildSpec(t, img, SpecConfig{Seccomp: profile, SeccompProfile: SeccompUnconfined})
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno || len(s.Linux.Seccomp.Syscalls) != 1 {
		t.Errorf("given profile not applied: %+v", s.Linux.Seccomp)
	}
	if s = buildSpec(t, img, SpecConfig{Seccomp: profile, Privileged: true}); s.Linux.Seccomp != nil {
		t.Errorf("privileged got a profile: %+v", s.Linux.Seccomp)
	}
}
