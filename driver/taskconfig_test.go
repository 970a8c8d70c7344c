package driver

import (
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

func TestParseTaskConfig(t *testing.T) {
	const img = "image = \"busybox:1\"\n"
	cases := []struct {
		name  string
		body  string
		check func(*testing.T, *TaskConfig)
		err   string
	}{
		{name: "minimal", body: img, check: func(t *testing.T, tc *TaskConfig) {
			must.Eq(t, "busybox:1", tc.Image)
			must.Nil(t, tc.Entrypoint)
			must.Eq(t, time.Duration(0), tc.ImagePullTimeout)
			must.MapEmpty(t, tc.Labels)
		}},
		{name: "empty image", body: `image = " "`, err: "image: must name an image"},
		{name: "fractional pids_limit", body: img + `pids_limit = 1.5`, err: "pids_limit: 1.5 is not a whole number"},
		{name: "pids_limit", body: img + `pids_limit = 64`, check: func(t *testing.T, tc *TaskConfig) { must.Eq(t, int64(64), tc.PidsLimit) }},
		{name: "fractional tmpfs size", body: img + "mount {\n type = \"tmpfs\"\n target = \"/t\"\n tmpfs_options {\n size = 8.01\n }\n}",
			err: "mount[0]: tmpfs_options.size: 8.01 is not a whole number"},
		{name: "platform", body: img + `platform = "linux/arm64/v8"`, check: func(t *testing.T, tc *TaskConfig) { must.Eq(t, "linux/arm64/v8", tc.Platform) }},
		{name: "bad platform", body: img + `platform = "linux//"`, err: `platform: "linux//" is not a platform`},
		{name: "pull_only", body: img + `pull_only = true`, check: func(t *testing.T, tc *TaskConfig) { must.True(t, tc.PullOnly) }},
		{name: "load", body: img + `load = "local/img.tar"`, check: func(t *testing.T, tc *TaskConfig) { must.Eq(t, "local/img.tar", tc.Load) }},
		{name: "absolute load", body: img + `load = "/srv/img.tar"`, err: `load: "/srv/img.tar" must be a path relative to the task directory`},
		{name: "task auth", body: img + "auth {\n username = \"u\"\n password = \"p\"\n}\nauth_soft_fail = true", check: func(t *testing.T, tc *TaskConfig) {
			must.Eq(t, "u", tc.Auth.Username)
			must.True(t, tc.AuthSoftFail)
		}},
		{name: "command and args", body: img + "command = \"sh\"\nargs = [\"-c\", \"echo hi\"]", check: func(t *testing.T, tc *TaskConfig) {
			must.Eq(t, "sh", tc.Command)
			must.Eq(t, []string{"-c", "echo hi"}, tc.Args)
		}},
		{name: "entrypoint", body: img + `entrypoint = ["/bin/sh", "-c"]`, check: func(t *testing.T, tc *TaskConfig) {
			must.Eq(t, []string{"/bin/sh", "-c"}, tc.Entrypoint)
		}},
		{name: "work_dir", body: img + `work_dir = "/srv"`, check: func(t *testing.T, tc *TaskConfig) { must.Eq(t, "/srv", tc.WorkDir) }},
		{name: "cwd alias", body: img + `cwd = "/srv"`, check: func(t *testing.T, tc *TaskConfig) { must.Eq(t, "/srv", tc.WorkDir) }},
		{name: "work_dir and cwd disagree", body: img + "work_dir = \"/a\"\ncwd = \"/b\"", err: `work_dir: "/a" and its alias cwd "/b" disagree`},
		{name: "relative work_dir", body: img + `work_dir = "srv"`, err: `work_dir: "srv" must be an absolute path`},
		{name: "hostname", body: img + `hostname = "web-1"`, check: func(t *testing.T, tc *TaskConfig) { must.Eq(t, "web-1", tc.Hostname) }},
		{name: "bad hostname", body: img + `hostname = "web_1!"`, err: `hostname: "web_1!" may only hold`},
		{name: "pull options", body: img + "force_pull = true\nimage_pull_timeout = \"2m\"", check: func(t *testing.T, tc *TaskConfig) {
			must.True(t, tc.ForcePull)
			must.Eq(t, 2*time.Minute, tc.ImagePullTimeout)
		}},
		{name: "bad pull timeout", body: img + `image_pull_timeout = "later"`, err: `image_pull_timeout: "later" is not a duration`},
		{name: "caps", body: img + "cap_add = [\"net_raw\"]\ncap_drop = [\"all\"]", check: func(t *testing.T, tc *TaskConfig) {
			must.Eq(t, []string{"net_raw"}, tc.CapAdd)
			must.Eq(t, []string{"all"}, tc.CapDrop)
		}},
		{name: "pids limit", body: img + `pids_limit = 64`, check: func(t *testing.T, tc *TaskConfig) { must.Eq(t, int64(64), tc.PidsLimit) }},
		{name: "negative pids limit", body: img + `pids_limit = -1`, err: "pids_limit: -1 must be zero"},
		{name: "pid mode", body: img + `pid_mode = "host"`, check: func(t *testing.T, tc *TaskConfig) { must.Eq(t, "host", tc.PIDMode) }},
		{name: "bad ipc mode", body: img + `ipc_mode = "container:x"`, err: `ipc_mode: "container:x" is not "private" or "host"`},
		{name: "labels", body: img + "labels {\n team = \"a\"\n}", check: func(t *testing.T, tc *TaskConfig) {
			must.Eq(t, map[string]string{"team": "a"}, tc.Labels)
		}},
		{name: "reserved label", body: img + "labels {\n \"nomad.alloc_id\" = \"x\"\n}", err: `labels: "nomad.alloc_id" uses the prefix`},
		{name: "runtime", body: img + `runtime = "io.containerd.kata.v2"`, check: func(t *testing.T, tc *TaskConfig) { must.Eq(t, "io.containerd.kata.v2", tc.Runtime) }},
		{name: "readonly rootfs", body: img + `readonly_rootfs = true`, check: func(t *testing.T, tc *TaskConfig) { must.True(t, tc.ReadonlyRootfs) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if tc := taskCase(t, c.body, c.err); tc != nil {
				c.check(t, tc)
			}
		})
	}
}

func TestParseTaskConfig_Mounts(t *testing.T) {
	const img = "image = \"busybox:1\"\n"
	cases := []struct {
		name string
		body string
		want []Mount
		err  string
	}{
		{name: "volume rw", body: img + `volumes = ["/srv/data:/data"]`,
			want: []Mount{{Field: "volumes[0]", Type: "bind", Source: "/srv/data", Target: "/data"}}},
		{name: "volume ro with propagation", body: img + `volumes = ["local/cfg:/etc/app:ro,rslave"]`,
			want: []Mount{{Field: "volumes[0]", Type: "bind", Source: "local/cfg", Target: "/etc/app", ReadOnly: true, Options: []string{"rslave"}}}},
		{name: "volume idmapped", body: img + `volumes = ["/srv/data:/data:rw,idmap"]`,
			want: []Mount{{Field: "volumes[0]", Type: "bind", Source: "/srv/data", Target: "/data", IDMap: true}}},
		{name: "volume bad option", body: img + `volumes = ["/a:/b:rx"]`, err: `volumes[0]: option "rx" in "/a:/b:rx" is not ro, rw`},
		{name: "volume no target", body: img + `volumes = ["/a"]`, err: `volumes[0]: "/a" must be "source:target"`},
		{name: "volume relative target", body: img + `volumes = ["/a:b"]`, err: `volumes[0]: target "b" must be an absolute path`},
		{name: "mount block", body: img + "mount {\n type = \"bind\"\n source = \"/srv\"\n target = \"/srv\"\n readonly = true\n bind_options {\n propagation = \"rshared\"\n }\n}",
			want: []Mount{{Field: "mount[0]", Type: "bind", Source: "/srv", Target: "/srv", ReadOnly: true, Options: []string{"rshared"}}}},
		{name: "mounts block with options", body: img + "mounts {\n type = \"bind\"\n source = \"/srv\"\n target = \"/srv\"\n options = [\"rbind\", \"ro\"]\n}",
			want: []Mount{{Field: "mounts[0]", Type: "bind", Source: "/srv", Target: "/srv", ReadOnly: true}}},
		{name: "mount block idmapped", body: img + "mount {\n source = \"/srv\"\n target = \"/srv\"\n idmap = true\n}",
			want: []Mount{{Field: "mount[0]", Type: "bind", Source: "/srv", Target: "/srv", IDMap: true}}},
		{name: "mounts block idmap option", body: img + "mounts {\n type = \"bind\"\n source = \"/srv\"\n target = \"/srv\"\n options = [\"rbind\", \"idmap\"]\n}",
			want: []Mount{{Field: "mounts[0]", Type: "bind", Source: "/srv", Target: "/srv", IDMap: true}}},
		{name: "idmapped tmpfs", body: img + "mount {\n type = \"tmpfs\"\n target = \"/scratch\"\n idmap = true\n}",
			err: `mount[0]: idmap applies to bind mounts only, not to type "tmpfs"`},
		{name: "tmpfs", body: img + "mount {\n type = \"tmpfs\"\n target = \"/scratch\"\n tmpfs_options {\n size = 1048576\n mode = 448\n }\n}",
			want: []Mount{{Field: "mount[0]", Type: "tmpfs", Target: "/scratch", Options: []string{"size=1048576", "mode=700"}}}},
		{name: "named volume", body: img + "mount {\n type = \"volume\"\n source = \"data\"\n target = \"/data\"\n}", err: `mount[0]: type "volume" is not supported`},
		{name: "bind without source", body: img + "mount {\n target = \"/data\"\n}", err: "mount[0]: a bind mount needs a source"},
		{name: "bad propagation", body: img + "mount {\n source = \"/a\"\n target = \"/a\"\n bind_options {\n propagation = \"up\"\n }\n}", err: `bind_options.propagation "up"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if tc := taskCase(t, c.body, c.err); tc != nil {
				must.Eq(t, c.want, tc.Mounts)
			}
		})
	}
}

func TestParseMounts_Exec2Binds(t *testing.T) {
	tc, err := parseTaskConfig(decodeTaskHCL(t, "image = \"busybox:1\"\nbind = {\n \"/srv/b\" = \"/b\"\n \"/srv/a\" = \"/a\"\n}\nbind_read_only = {\n \"/etc/ssl\" = \"/etc/ssl\"\n}"))
	must.NoError(t, err)
	must.Eq(t, []Mount{
		{Field: `bind["/srv/a"]`, Type: "bind", Source: "/srv/a", Target: "/a"},
		{Field: `bind["/srv/b"]`, Type: "bind", Source: "/srv/b", Target: "/b"},
		{Field: `bind_read_only["/etc/ssl"]`, Type: "bind", Source: "/etc/ssl", Target: "/etc/ssl", ReadOnly: true},
	}, tc.Mounts)

	_, err = parseTaskConfig(decodeTaskHCL(t, "image = \"busybox:1\"\nbind = {\n \"/srv\" = \"srv\"\n}"))
	must.Error(t, err)
	must.StrContains(t, err.Error(), `bind["/srv"]: target "srv" must be an absolute path`)
}
