package executor

import (
	"context"
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

// buildSpec applies BuildSpecOpts to an empty spec, as Create does through
// containerd's WithNewSpec (the options need no client).
func buildSpec(t *testing.T, img ocispec.ImageConfig, cfg SpecConfig) *specs.Spec {
	t.Helper()
	opts, err := BuildSpecOpts(img, cfg)
	if err != nil {
		t.Fatalf("BuildSpecOpts: %v", err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "nomad")
	var s oci.Spec
	if err := oci.ApplyOpts(ctx, nil, &containers.Container{ID: "web-1234"}, &s, opts...); err != nil {
		t.Fatalf("ApplyOpts: %v", err)
	}
	return &s
}

func TestBuildSpecOptsArgs(t *testing.T) {
	ep := []string{"/entry", "-x"}
	cmd := []string{"serve", "--port=80"}
	cases := []struct {
		name                string
		imgEntry, imgCmd    []string
		entrypoint, command []string
		want                []string
	}{
		{name: "image entrypoint and cmd", imgEntry: ep, imgCmd: cmd, want: []string{"/entry", "-x", "serve", "--port=80"}},
		{name: "image cmd only", imgCmd: cmd, want: cmd},
		{name: "image entrypoint only", imgEntry: ep, want: ep},
		{name: "command replaces image cmd after image entrypoint", imgEntry: ep, imgCmd: cmd, command: []string{"check"}, want: []string{"/entry", "-x", "check"}},
		{name: "command replaces image cmd without entrypoint", imgCmd: cmd, command: []string{"/bin/true"}, want: []string{"/bin/true"}},
		{name: "entrypoint drops image cmd", imgEntry: ep, imgCmd: cmd, entrypoint: []string{"/bin/sh"}, want: []string{"/bin/sh"}},
		{name: "entrypoint replaces on image with only cmd", imgCmd: cmd, entrypoint: []string{"/bin/sh"}, want: []string{"/bin/sh"}},
		{name: "entrypoint and command", imgEntry: ep, imgCmd: cmd, entrypoint: []string{"/bin/sh", "-c"}, command: []string{"echo hi"}, want: []string{"/bin/sh", "-c", "echo hi"}},
		{name: "empty entrypoint clears image entrypoint", imgEntry: ep, imgCmd: cmd, entrypoint: []string{}, command: []string{"/bin/date"}, want: []string{"/bin/date"}},
		{name: "empty command drops image cmd", imgEntry: ep, imgCmd: cmd, command: []string{}, want: ep},
		{name: "command on image without config", command: []string{"/bin/ls", "/"}, want: []string{"/bin/ls", "/"}},
		{name: "entrypoint on image without config", entrypoint: []string{"/bin/ls"}, want: []string{"/bin/ls"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := ocispec.ImageConfig{Entrypoint: tc.imgEntry, Cmd: tc.imgCmd}
			s := buildSpec(t, img, SpecConfig{Entrypoint: tc.entrypoint, Command: tc.command})
			if !reflect.DeepEqual(s.Process.Args, tc.want) {
				t.Fatalf("args = %q, want %q", s.Process.Args, tc.want)
			}
		})
	}
}

func TestBuildSpecOptsRejects(t *testing.T) {
	cases := []struct {
		name string
		img  ocispec.ImageConfig
		cfg  SpecConfig
		want string
	}{
		{name: "no command at all", want: "no command"},
		{name: "empty entrypoint and no command", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{Entrypoint: []string{}}, want: "no command"},
		{name: "relative cwd", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{Cwd: "srv"}, want: "not an absolute path"},
		{name: "host network with netns path", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{HostNetwork: true, NetNSPath: "/var/run/netns/x"}, want: "mutually exclusive"},
		{name: "memory max below memory", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{MemoryBytes: 200, MemoryMaxBytes: 100}, want: "below memory"},
		{name: "negative memory", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{MemoryBytes: -1}, want: "negative"},
		{name: "relative mount destination", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{Mounts: []specs.Mount{{Destination: "data", Type: "tmpfs", Source: "tmpfs"}}}, want: "not an absolute path"},
		{name: "user with three parts", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{User: "1:2:3"}, want: "invalid user"},
		{name: "user with empty group", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{User: "1000:"}, want: "invalid user"},
		{name: "uid out of range", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{User: "4294967296"}, want: "out of range"},
		{name: "uid above runc's maximum", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{User: "1:2147483648"}, want: "out of range"},
		{name: "bad image user", img: ocispec.ImageConfig{Cmd: []string{"sh"}, User: ":0"}, want: "invalid user"},
		// CVE-2024-21626: a working directory in /proc/self/fd reaches a leaked host descriptor
		{name: "image workdir in proc fd", img: ocispec.ImageConfig{Cmd: []string{"sh"}, WorkingDir: "/proc/self/fd/7"}, want: `image config WorkingDir "/proc/self/fd/7" is refused: it is under /proc`},
		{name: "relative image workdir in proc", img: ocispec.ImageConfig{Cmd: []string{"sh"}, WorkingDir: "proc/1/cwd"}, want: "is under /proc"},
		{name: "dotted image workdir in proc", img: ocispec.ImageConfig{Cmd: []string{"sh"}, WorkingDir: "/srv/../proc/thread-self/fd/8"}, want: "is under /proc"},
		{name: "task cwd in proc", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{Cwd: "/proc/self/fd/9"}, want: `working directory "/proc/self/fd/9" is refused`},
		{name: "mount over proc", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{Mounts: []specs.Mount{{Destination: "/proc", Type: "tmpfs", Source: "tmpfs"}}}, want: "is under /proc"},
		{name: "mount under proc", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{Mounts: []specs.Mount{{Destination: "/proc/sys/", Type: "bind", Source: "/tmp"}}}, want: "is under /proc"},
		{name: "mount over root", img: ocispec.ImageConfig{Cmd: []string{"sh"}}, cfg: SpecConfig{Mounts: []specs.Mount{{Destination: "/x/..", Type: "bind", Source: "/tmp"}}}, want: "would replace the root filesystem"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildSpecOpts(tc.img, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestBuildSpecOptsEnv(t *testing.T) {
	cases := []struct {
		name string
		img  []string
		task map[string]string
		want []string
	}{
		{
			name: "task overrides and appends in name order",
			img:  []string{"PATH=/bin", "LANG=C", "HOME=/root"},
			task: map[string]string{"LANG": "en_US.UTF-8", "ZED": "1", "APP": "x=y"},
			want: []string{"PATH=/bin", "LANG=en_US.UTF-8", "HOME=/root", "APP=x=y", "ZED=1"},
		},
		{
			name: "default PATH when neither sets it",
			img:  []string{"LANG=C"},
			task: map[string]string{"A": "1"},
			want: []string{"LANG=C", "A=1", defaultPathEnv},
		},
		{
			name: "task PATH wins",
			task: map[string]string{"PATH": "/opt/bin"},
			want: []string{"PATH=/opt/bin"},
		},
		{
			name: "later image duplicate wins in place",
			img:  []string{"A=1", "PATH=/bin", "A=2"},
			want: []string{"A=2", "PATH=/bin"},
		},
		{
			name: "empty value is kept",
			img:  []string{"PATH=/bin"},
			task: map[string]string{"EMPTY": ""},
			want: []string{"PATH=/bin", "EMPTY="},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}, Env: tc.img}, SpecConfig{Env: tc.task})
			if !reflect.DeepEqual(s.Process.Env, tc.want) {
				t.Fatalf("env = %q, want %q", s.Process.Env, tc.want)
			}
		})
	}
}

func TestBuildSpecOptsCwd(t *testing.T) {
	cases := []struct {
		name     string
		imageDir string
		cwd      string
		want     string
	}{
		{name: "default", want: "/"},
		{name: "image", imageDir: "/srv/app", want: "/srv/app"},
		{name: "relative image dir is rooted", imageDir: "app", want: "/app"},
		{name: "task wins", imageDir: "/srv/app", cwd: "/tmp/", want: "/tmp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := buildSpec(t, ocispec.ImageConfig{Cmd: []string{"sh"}, WorkingDir: tc.imageDir}, SpecConfig{Cwd: tc.cwd})
			if s.Process.Cwd != tc.want {
				t.Fatalf("cwd = %q, want %q", s.Process.Cwd, tc.want)
			}
		})
	}
}

func TestBuildSpecOptsUser(t *testing.T) {
	cases := []struct {
		name       string
		imageUser  string
		user       string
		uid, gid   uint32
		namedLater bool
	}{
		{name: "default root"},
		{name: "uid", user: "1000", uid: 1000},
		{name: "uid and gid", user: "1000:1001", uid: 1000, gid: 1001},
		{name: "image uid and gid", imageUser: "123:456", uid: 123, gid: 456},
		{name: "task overrides image", imageUser: "123:456", user: "7", uid: 7},
		{name: "name left to create", user: "app", namedLater: true},
		{name: "name and group left to create", user: "app:staff", namedLater: true},
		{name: "uid and group name left to create", user: "1000:staff", namedLater: true},
		{name: "image name left to create", imageUser: "nobody", namedLater: true},
		{name: "task uid over image name", imageUser: "nobody", user: "65534:65534", uid: 65534, gid: 65534},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := ocispec.ImageConfig{Cmd: []string{"sh"}, User: tc.imageUser}
			cfg := SpecConfig{User: tc.user}
			s := buildSpec(t, img, cfg)
			if s.Process.User.UID != tc.uid || s.Process.User.GID != tc.gid {
				t.Fatalf("user = %d:%d, want %d:%d", s.Process.User.UID, s.Process.User.GID, tc.uid, tc.gid)
			}
			numericSet := !tc.namedLater && (tc.user != "" || tc.imageUser != "")
			if numericSet && !slices.Contains(s.Process.User.AdditionalGids, tc.gid) {
				t.Fatalf("additional gids %v miss the primary gid %d", s.Process.User.AdditionalGids, tc.gid)
			}
			named := namedUserOpts(img, cfg)
			if (len(named) > 0) != tc.namedLater {
				t.Fatalf("named user options = %d, want them: %v", len(named), tc.namedLater)
			}
		})
	}
}

func TestParseNumericUser(t *testing.T) {
	cases := []struct {
		in       string
		uid, gid uint32
		numeric  bool
		err      bool
	}{
		{in: "0", numeric: true},
		{in: "1000", uid: 1000, numeric: true},
		{in: "1000:50", uid: 1000, gid: 50, numeric: true},
		{in: "2147483647", uid: 2147483647, numeric: true},
		{in: "app"},
		{in: "app:50"},
		{in: "1000:staff"},
		{in: "-1", numeric: false},
		{in: "", err: true},
		{in: ":", err: true},
		{in: "1:2:3", err: true},
		{in: "99999999999", err: true},
	}
	for _, tc := range cases {
		uid, gid, numeric, err := parseNumericUser(tc.in)
		if (err != nil) != tc.err || numeric != tc.numeric || uid != tc.uid || gid != tc.gid {
			t.Errorf("parseNumericUser(%q) = %d, %d, %v, %v", tc.in, uid, gid, numeric, err)
		}
	}
}

func mountDests(s *specs.Spec) []string {
	var out []string
	for _, m := range s.Mounts {
		out = append(out, m.Destination)
	}
	return out
}

func hasNamespace(s *specs.Spec, typ specs.LinuxNamespaceType, path string) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == typ && ns.Path == path {
			return true
		}
	}
	return false
}
