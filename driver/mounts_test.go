package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/shoenig/test/must"
)

func TestResolveMounts_HostPathGate(t *testing.T) {
	cfg := testTask(t)
	td := cfg.TaskDir()
	host := t.TempDir() // a host path outside the allocation
	allowed := filepath.Join(host, "allowed")
	other := filepath.Join(host, "other")
	for _, d := range []string{allowed, other} {
		must.NoError(t, os.MkdirAll(d, 0o755))
	}
	// symlinks that try to leave the allocation or the allowed prefix
	must.NoError(t, os.Symlink(other, filepath.Join(td.LocalDir, "escape")))
	must.NoError(t, os.Symlink(other, filepath.Join(allowed, "escape")))
	must.NoError(t, os.MkdirAll(filepath.Join(td.LocalDir, "conf"), 0o755))

	bind := func(src string) []Mount {
		return []Mount{{Field: "volumes[0]", Type: "bind", Source: src, Target: "/data"}}
	}
	disabled := defaultConfig(t)
	enabled := defaultConfig(t)
	enabled.VolumesEnabled = true
	limited := defaultConfig(t)
	limited.VolumesEnabled = true
	limited.AllowedHostPaths = []string{allowed}

	cases := []struct {
		name    string
		conf    *Config
		src     string
		wantSrc string
		err     string
	}{
		{name: "relative inside task dir needs no opt-in", conf: disabled, src: "local/conf", wantSrc: filepath.Join(td.LocalDir, "conf")},
		{name: "host path refused by default", conf: disabled, src: other, err: `volumes[0]: host path "` + other + `" is refused: binding host paths needs plugin option volumes.enabled = true`},
		{name: "symlink out of the task dir refused", conf: disabled, src: "local/escape", err: `host path "local/escape" is refused`},
		{name: "dot-dot out of the task dir refused", conf: disabled, src: "../..", err: `host path "../.." is refused`},
		{name: "host path with volumes enabled", conf: enabled, src: other, wantSrc: other},
		{name: "under allowed prefix", conf: limited, src: allowed, wantSrc: allowed},
		{name: "outside allowed prefix", conf: limited, src: other, err: "is outside volumes.allowed_host_paths"},
		{name: "symlink out of allowed prefix", conf: limited, src: filepath.Join(allowed, "escape"), err: `(resolved to "` + other + `") is outside`},
		{name: "missing source", conf: enabled, src: filepath.Join(host, "nope"), err: "cannot be resolved"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p pins
			defer p.close()
			ms, err := resolveMounts(bind(c.src), td.Dir, cfg.AllocDir, c.conf, &p)
			if !parsed(t, err, c.err) {
				return
			}
			must.Len(t, 1, ms)
			must.Eq(t, c.wantSrc, ms[0].Source)
			must.Eq(t, "/data", ms[0].Destination)
		})
	}
}

// Sources inside the allocation are idmapped, host paths only when the
// mount asks for it; tmpfs never.
func TestResolveMounts_Options(t *testing.T) {
	cfg := testTask(t)
	td := cfg.TaskDir()
	host := t.TempDir()
	conf := defaultConfig(t)
	conf.VolumesEnabled = true
	var p pins
	defer p.close()
	ms, err := resolveMounts([]Mount{
		{Field: "a", Type: "bind", Source: "local", Target: "/ro", ReadOnly: true},
		{Field: "b", Type: "bind", Source: "local", Target: "/shared", Options: []string{"rshared"}},
		{Field: "c", Type: "tmpfs", Target: "/scratch", Options: []string{"size=1024"}},
		{Field: "d", Type: "bind", Source: host, Target: "/host"},
		{Field: "e", Type: "bind", Source: host, Target: "/owned", IDMap: true},
	}, td.Dir, cfg.AllocDir, conf, &p)
	must.NoError(t, err)
	must.Eq(t, []specs.Mount{
		{Type: "bind", Source: td.LocalDir, Destination: "/ro", Options: []string{"rbind", "ro", "idmap", "rprivate"}},
		{Type: "bind", Source: td.LocalDir, Destination: "/shared", Options: []string{"rbind", "rw", "rshared", "idmap"}},
		{Type: "tmpfs", Source: "tmpfs", Destination: "/scratch", Options: []string{"nosuid", "nodev", "rw", "size=1024"}},
		{Type: "bind", Source: host, Destination: "/host", Options: []string{"rbind", "rw", "rprivate"}},
		{Type: "bind", Source: host, Destination: "/owned", Options: []string{"rbind", "rw", "idmap", "rprivate"}},
	}, ms)
}

func TestIsUnder(t *testing.T) {
	cases := []struct {
		path, dir string
		want      bool
	}{
		{"/a/b", "/a", true},
		{"/a", "/a", true},
		{"/ab", "/a", false},
		{"/a/../b", "/a", false},
		{"/", "/a", false},
	}
	for _, c := range cases {
		must.Eq(t, c.want, isUnder(filepath.Clean(c.path), c.dir), must.Sprintf("%s under %s", c.path, c.dir))
	}
}

// A path swapped for a symlink after the check is caught when the binds
// are verified: here the "container" is this process, whose root is the
// host's, and each bind's destination is its own source path.
func TestPinsVerify(t *testing.T) {
	cfg := testTask(t)
	td := cfg.TaskDir()
	data := filepath.Join(td.SharedAllocDir, "data")
	must.NoError(t, os.MkdirAll(data, 0o755))
	host := t.TempDir()
	var p pins
	defer p.close()
	ms, err := resolveMounts([]Mount{{Field: "volumes[0]", Type: "bind", Source: "../alloc/data", Target: "/data"}}, td.Dir, cfg.AllocDir, defaultConfig(t), &p)
	must.NoError(t, err)
	must.Eq(t, data, ms[0].Source)
	must.Len(t, 1, p.binds)
	p.binds[0].dest = data
	must.NoError(t, p.verify(uint32(os.Getpid())))

	// another task of the allocation swaps the directory for a symlink
	must.NoError(t, os.Rename(data, data+".old"))
	must.NoError(t, os.Symlink(host, data))
	err = p.verify(uint32(os.Getpid()))
	must.ErrorContains(t, err, `volumes[0]: what is mounted at `+data+` is not the checked source "`+data+`" (the host path changed while the container was created): refused`)

	// of two binds at one destination only the last one counts
	p.bind("volumes[1]", data, p.binds[0].source)
	must.Error(t, p.verify(uint32(os.Getpid())))
	other, err := p.open(host)
	must.NoError(t, err)
	p.bind("volumes[2]", data, other)
	must.NoError(t, p.verify(uint32(os.Getpid())))
}

func TestNomadMounts(t *testing.T) {
	cfg := testTask(t)
	host := t.TempDir()
	// Nomad's host volumes and CSI mounts follow Nomad's rules, not volumes.*
	cfg.Mounts = []*drivers.MountConfig{{TaskPath: "/vol", HostPath: host, Readonly: true, PropagationMode: "host-to-task"}}
	var p pins
	defer p.close()
	ms, logs, err := nomadMounts(cfg, &p)
	must.NoError(t, err)
	must.Len(t, 4, ms)
	// the task directories are idmapped, Nomad's volumes are not
	td := cfg.TaskDir()
	must.Eq(t, specs.Mount{Type: "bind", Source: td.LocalDir, Destination: "/local", Options: []string{"rbind", "rw", "idmap", "rprivate"}}, ms[1])
	must.Eq(t, specs.Mount{Type: "bind", Source: host, Destination: "/vol", Options: []string{"rbind", "ro", "rslave"}}, ms[3])
	// alloc/logs comes apart, to be mounted after every bind
	must.Eq(t, "/alloc/logs", logs.Destination)
	must.SliceContains(t, logs.Options, "ro")
	must.SliceContains(t, logs.Options, "idmap")

	// alloc/logs swapped for a symlink to a host directory is refused
	must.NoError(t, os.RemoveAll(td.LogDir))
	must.NoError(t, os.Symlink(host, td.LogDir))
	_, _, err = nomadMounts(cfg, &p)
	must.ErrorContains(t, err, `task directory /alloc/logs: "`+td.LogDir+`" resolves to "`+host+`", outside the allocation directory: refused`)
}

func TestParseMounts_Targets(t *testing.T) {
	cases := []struct {
		body, err string
	}{
		{body: `volumes = ["local:/proc"]`, err: `volumes[0]: mount destination "/proc" is refused: it is under /proc`},
		{body: `volumes = ["local:/proc/sys/kernel"]`, err: `volumes[0]: mount destination "/proc/sys/kernel" is refused`},
		{body: `volumes = ["local:/data/../proc/1"]`, err: "is under /proc"},
		{body: `volumes = ["local:/"]`, err: "would replace the root filesystem"},
		{body: "mount {\n type = \"tmpfs\"\n target = \"/proc/kcore\"\n}", err: `mount[0]: mount destination "/proc/kcore" is refused`},
		{body: `bind = { "local" = "/proc/self" }`, err: "is under /proc"},
		{body: `volumes = ["../alloc:/alloc"]`, err: `volumes[0]: target "/alloc" is refused: it would cover /alloc/logs, which stays read-only`},
		{body: `volumes = ["local:/alloc/logs/"]`, err: "would cover /alloc/logs"},
		{body: "mount {\n type = \"tmpfs\"\n target = \"/alloc/logs/x\"\n}", err: `mount[0]: target "/alloc/logs/x" is refused`},
	}
	for _, c := range cases {
		_, err := parseTaskConfig(decodeTaskHCL(t, "image = \"busybox:1\"\n"+c.body))
		must.ErrorContains(t, err, c.err, must.Sprint(c.body))
	}
}

func TestParseMounts_TargetsNextToTaskDirs(t *testing.T) {
	for _, target := range []string{"/alloc/data", "/local/conf", "/secrets/x", "/allocations", "/alloc/logsx"} {
		_, err := parseTaskConfig(decodeTaskHCL(t, "image = \"busybox:1\"\nvolumes = [\"local:"+target+"\"]"))
		must.NoError(t, err, must.Sprint(target))
	}
}
