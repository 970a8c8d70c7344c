package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/image"
)

func TestParseSecurityConfig(t *testing.T) {
	c := configCase(t, "", "")
	must.Eq(t, SecurityConfig{}, c.Security) // every gate closed

	cases := []struct {
		body string
		err  string
		want SecurityConfig
	}{
		{body: "allow_unconfined_seccomp = true\nno_new_privileges = true\nallowed_devices = [\"/dev/fuse\", \"/dev/dri/*\"]\nallowed_seccomp_profiles = [\"/etc/nomad.d/seccomp\"]",
			want: SecurityConfig{AllowUnconfinedSeccomp: true, NoNewPrivileges: true, AllowedDevices: []string{"/dev/fuse", "/dev/dri/*"}, AllowedSeccompProfiles: []string{"/etc/nomad.d/seccomp"}}},
		{body: `allowed_devices = ["fuse"]`, err: `allowed_devices: "fuse" must be an absolute device path or glob`},
		{body: `allowed_devices = ["/dev/[a"]`, err: `allowed_devices: "/dev/[a" is not a valid glob`},
		{body: `allowed_seccomp_profiles = ["seccomp"]`, err: `allowed_seccomp_profiles: "seccomp" must be an absolute path`},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			if c := configCase(t, tc.body, tc.err); c != nil {
				must.Eq(t, tc.want, c.Security)
			}
		})
	}
}

func TestParseTaskSecurity(t *testing.T) {
	const img = "image = \"busybox:1\"\n"
	cases := []struct {
		name string
		body string
		err  string
		want func(*testing.T, TaskSecurity)
	}{
		{name: "none", want: func(t *testing.T, ts TaskSecurity) {
			must.Nil(t, ts.Seccomp)
			must.Nil(t, ts.NoNewPrivileges)
			must.MapEmpty(t, ts.Sysctl)
			must.SliceEmpty(t, ts.Devices)
		}},
		{name: "roblox seccomp with profile", body: "seccomp = true\nseccomp_profile = \"/etc/p.json\"", want: func(t *testing.T, ts TaskSecurity) {
			must.True(t, *ts.Seccomp)
			must.Eq(t, "/etc/p.json", ts.SeccompProfile)
		}},
		{name: "seccomp off with a profile", body: "seccomp = false\nseccomp_profile = \"/etc/p.json\"", err: `seccomp: false disagrees with seccomp_profile "/etc/p.json"`},
		{name: "sysctl", body: `sysctl = { "net.core.somaxconn" = "1024", "kernel.shmmax" = "1000" }`, want: func(t *testing.T, ts TaskSecurity) {
			must.Eq(t, map[string]string{"net.core.somaxconn": "1024", "kernel.shmmax": "1000"}, ts.Sysctl)
		}},
		{name: "sysctl path form", body: `sysctl = { "net/core/somaxconn" = "1" }`, err: `sysctl: key "net/core/somaxconn" must be dot-separated names`},
		{name: "sysctl dot dot", body: `sysctl = { "net..x" = "1" }`, err: `sysctl: key "net..x"`},
		{name: "sysctl newline", body: `sysctl = { "net.core.somaxconn" = "1\n2" }`, err: `sysctl: value of "net.core.somaxconn" must be one line`},
		{name: "devices", body: `devices = ["/dev/fuse", "/dev/sda:/dev/xvda:r"]`, want: func(t *testing.T, ts TaskSecurity) {
			must.Eq(t, []DeviceRequest{
				{Field: "devices[0]", HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "rwm"},
				{Field: "devices[1]", HostPath: "/dev/sda", ContainerPath: "/dev/xvda", Permissions: "r"},
			}, ts.Devices)
		}},
		{name: "device relative", body: `devices = ["fuse"]`, err: `devices[0]: "fuse" needs absolute host and container paths`},
		{name: "device bad permissions", body: `devices = ["/dev/fuse:/dev/fuse:rwx"]`, err: `devices[0]: permissions "rwx" must be letters of "rwm"`},
		{name: "device empty permissions", body: `devices = ["/dev/fuse:/dev/fuse:"]`, err: `devices[0]: permissions in "/dev/fuse:/dev/fuse:" are empty`},
		{name: "device into proc", body: `devices = ["/dev/null:/proc/kcore"]`, err: `devices[0]: mount destination "/proc/kcore" is refused`},
		{name: "device too many parts", body: `devices = ["/a:/b:r:w"]`, err: `devices[0]: "/a:/b:r:w" must be`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if tc := taskCase(t, img+c.body, c.err); tc != nil {
				c.want(t, tc.Security)
			}
		})
	}
}

func TestCheckSysctl(t *testing.T) {
	cases := []struct {
		key              string
		ownNetNS, hostIP bool
		err              string
	}{
		{key: "net.core.somaxconn", ownNetNS: true},
		{key: "net.ipv4.ip_forward", err: `sysctl: "net.ipv4.ip_forward" is refused: the task uses the host's network namespace`},
		{key: "kernel.shmmax"},
		{key: "fs.mqueue.msg_max"},
		{key: "kernel.sem", hostIP: true, err: `shares the host's IPC namespace`},
		{key: "kernel.domainname"},
		{key: "kernel.hostname", err: "set the task option hostname instead"},
		{key: "kernel.panic", ownNetNS: true, err: `sysctl: "kernel.panic" is refused: it is not namespaced`},
		{key: "vm.swappiness", ownNetNS: true, err: "is not namespaced"},
		{key: "fs.file-max", ownNetNS: true, err: "is not namespaced"},
		{key: "kernel.shm", ownNetNS: true, err: "is not namespaced"}, // no prefix matching for the IPC keys
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			err := checkSysctl(c.key, c.ownNetNS, c.hostIP)
			if c.err == "" {
				must.NoError(t, err)
				return
			}
			must.ErrorContains(t, err, c.err)
		})
	}
}

func TestPlanTask_SecurityGates(t *testing.T) {
	profiles := t.TempDir()
	strict := filepath.Join(profiles, "strict.json")
	must.NoError(t, os.WriteFile(strict, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644))
	docker := filepath.Join(profiles, "docker.json")
	must.NoError(t, os.WriteFile(docker, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[]}`), 0o644))
	noDefault := filepath.Join(profiles, "nodefault.json")
	must.NoError(t, os.WriteFile(noDefault, []byte(`{"syscalls":[]}`), 0o644))
	outside := filepath.Join(t.TempDir(), "allow-all.json")
	must.NoError(t, os.WriteFile(outside, []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o644))

	profilesAllowed := func(c *Config) { c.Security.AllowedSeccompProfiles = []string{profiles} }
	unconfined := func(c *Config) { c.Security.AllowUnconfinedSeccomp = true }
	cases := []struct {
		name   string
		body   string
		enable func(*Config)
		task   func(*testing.T, *drivers.TaskConfig)
		err    string
		check  func(*testing.T, *plan)
	}{
		{name: "defaults", check: func(t *testing.T, p *plan) {
			must.False(t, p.spec.NewPrivileges)
			must.Eq(t, "", p.spec.SeccompProfile)
			must.Nil(t, p.spec.Seccomp)
			must.MapEmpty(t, p.spec.Sysctl)
			must.SliceEmpty(t, p.spec.Devices)
		}},
		{name: "no_new_privileges false", body: `no_new_privileges = false`, check: func(t *testing.T, p *plan) { must.True(t, p.spec.NewPrivileges) }},
		{name: "no_new_privileges false when enforced", body: `no_new_privileges = false`, enable: func(c *Config) { c.Security.NoNewPrivileges = true },
			err: "no_new_privileges: false is refused: the plugin sets no_new_privileges = true"},
		{name: "no_new_privileges true when enforced", body: `no_new_privileges = true`, enable: func(c *Config) { c.Security.NoNewPrivileges = true },
			check: func(t *testing.T, p *plan) { must.False(t, p.spec.NewPrivileges) }},
		{name: "unconfined refused", body: `seccomp = false`, err: "seccomp: running without a seccomp profile is refused: the plugin needs allow_unconfined_seccomp = true"},
		{name: "unconfined profile refused", body: `seccomp_profile = "unconfined"`, err: "allow_unconfined_seccomp = true"},
		{name: "unconfined allowed", body: `seccomp = false`, enable: unconfined,
			check: func(t *testing.T, p *plan) { must.Eq(t, executor.SeccompUnconfined, p.spec.SeccompProfile) }},
		{name: "profile without an allowed dir", body: `seccomp_profile = "` + strict + `"`,
			err: `seccomp_profile: "` + strict + `" (resolved to "` + strict + `") is refused: it is not under the plugin's allowed_seccomp_profiles`},
		{name: "profile from an allowed dir", body: `seccomp_profile = "` + strict + `"`, enable: profilesAllowed, check: func(t *testing.T, p *plan) {
			must.Eq(t, specs.ActErrno, p.spec.Seccomp.DefaultAction)
			must.Eq(t, []string{"read"}, p.spec.Seccomp.Syscalls[0].Names)
		}},
		{name: "permissive profile outside the allowed dir", body: `seccomp_profile = "` + outside + `"`, enable: profilesAllowed, err: "is not under the plugin's allowed_seccomp_profiles"},
		{name: "symlink from the allowed dir to outside", body: `seccomp_profile = "local/p.json"`, enable: profilesAllowed,
			task: func(t *testing.T, cfg *drivers.TaskConfig) {
				must.NoError(t, os.Symlink(outside, filepath.Join(cfg.TaskDir().LocalDir, "p.json")))
			},
			err: `(resolved to "` + outside + `") is refused`},
		{name: "task's own profile needs unconfined", body: `seccomp_profile = "local/p.json"`,
			task: func(t *testing.T, cfg *drivers.TaskConfig) {
				must.NoError(t, os.WriteFile(filepath.Join(cfg.TaskDir().LocalDir, "p.json"), []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o644))
			},
			err: "is not under the plugin's allowed_seccomp_profiles"},
		{name: "task's own profile with unconfined allowed", body: `seccomp_profile = "local/p.json"`, enable: unconfined,
			task: func(t *testing.T, cfg *drivers.TaskConfig) {
				must.NoError(t, os.WriteFile(filepath.Join(cfg.TaskDir().LocalDir, "p.json"), []byte(`{"defaultAction":"SCMP_ACT_LOG"}`), 0o644))
			},
			check: func(t *testing.T, p *plan) { must.Eq(t, specs.ActLog, p.spec.Seccomp.DefaultAction) }},
		{name: "docker format refused", body: `seccomp_profile = "` + docker + `"`, enable: profilesAllowed, err: `unknown field "archMap"`},
		{name: "profile without default action", body: `seccomp_profile = "` + noDefault + `"`, enable: profilesAllowed, err: "has no defaultAction"},
		{name: "missing profile", body: `seccomp_profile = "/nonexistent/p.json"`, enable: unconfined, err: `seccomp_profile: "/nonexistent/p.json" cannot be opened`},
		{name: "profile is a directory", body: `seccomp_profile = "` + profiles + `"`, enable: profilesAllowed, err: "is not a regular file"},
		{name: "net sysctl on host network", body: "network_mode = \"host\"\nsysctl = { \"net.core.somaxconn\" = \"1024\" }", err: "uses the host's network namespace"},
		{name: "net sysctl in own netns", body: "network_mode = \"none\"\nsysctl = { \"net.core.somaxconn\" = \"1024\" }",
			check: func(t *testing.T, p *plan) { must.Eq(t, "1024", p.spec.Sysctl["net.core.somaxconn"]) }},
		{name: "ipc sysctl with host ipc", body: "ipc_mode = \"host\"\nsysctl = { \"kernel.shmmax\" = \"1\" }", enable: func(c *Config) { c.AllowHostIPC = true },
			err: "shares the host's IPC namespace"},
		{name: "host sysctl", body: `sysctl = { "kernel.core_pattern" = "|/tmp/x" }`, err: `sysctl: "kernel.core_pattern" is refused: it is not namespaced`},
		{name: "device without allow list", body: `devices = ["/dev/null"]`, err: `devices[0]: host device "/dev/null" is refused: the plugin's allowed_devices is empty`},
		{name: "device not allowed", body: `devices = ["/dev/zero"]`, enable: func(c *Config) { c.Security.AllowedDevices = []string{"/dev/null"} },
			err: `devices[0]: host device "/dev/zero" (resolved to "/dev/zero") is not in the plugin's allowed_devices`},
		{name: "device by glob", body: `devices = ["/dev/zero:/dev/z:r"]`, enable: func(c *Config) { c.Security.AllowedDevices = []string{"/dev/ze*"} },
			check: func(t *testing.T, p *plan) {
				must.Eq(t, []executor.Device{{HostPath: "/dev/zero", ContainerPath: "/dev/z", Permissions: "r"}}, p.spec.Devices)
			}},
		{name: "missing device", body: `devices = ["/dev/nonexistent-device"]`, enable: func(c *Config) { c.Security.AllowedDevices = []string{"/dev/*"} },
			err: `devices[0]: host device "/dev/nonexistent-device" cannot be resolved`},
		{name: "not a device", body: `devices = ["/etc/hostname"]`, enable: func(c *Config) { c.Security.AllowedDevices = []string{"/etc/*"} },
			err: "is not a device node"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := defaultConfig(t)
			if c.enable != nil {
				c.enable(conf)
			}
			cfg := testTask(t)
			if c.task != nil {
				c.task(t, cfg)
			}
			p, err := planFor(t, conf, cfg, c.body)
			if !parsed(t, err, c.err) {
				return
			}
			c.check(t, p)
		})
	}
}

// A device allowed by a literal path is matched after both sides are
// resolved; a symlink to another device does not pass.
func TestAllowDeviceResolvesSymlinks(t *testing.T) {
	dir := t.TempDir()
	toZero := filepath.Join(dir, "zero")
	must.NoError(t, os.Symlink("/dev/zero", toZero))
	sc := SecurityConfig{AllowedDevices: []string{"/dev/null"}}
	_, err := sc.allowDevice(DeviceRequest{Field: "devices[0]", HostPath: toZero, ContainerPath: "/dev/x", Permissions: "r"})
	must.ErrorContains(t, err, `(resolved to "/dev/zero") is not in the plugin's allowed_devices`)

	sc.AllowedDevices = []string{toZero}
	d, err := sc.allowDevice(DeviceRequest{Field: "devices[0]", HostPath: "/dev/zero", ContainerPath: "/dev/x", Permissions: "r"})
	must.NoError(t, err)
	must.Eq(t, "/dev/zero", d.HostPath)
}

// Insecure registries come only from the plugin's registry_config_dir: no
// task option turns TLS off or names registry hosts, and an image
// reference cannot carry a scheme.
func TestNoTaskOptionMakesRegistriesInsecure(t *testing.T) {
	for name := range taskConfigSpec.GetObject().GetAttributes() {
		for _, w := range []string{"insecure", "tls", "registry", "mirror", "hosts_dir", "skip_verify"} {
			must.StrNotContains(t, name, w, must.Sprintf("task option %q", name))
		}
	}
	for _, ref := range []string{"http://registry.example.com/app:1", "registry.example.com/app:1?insecure=true"} {
		_, err := image.Normalize(ref)
		must.ErrorIs(t, err, image.ErrInvalidReference)
	}
}
