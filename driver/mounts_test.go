package driver

import (
	"os"
	"path/filepath"
	"testing"

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
			ms, err := resolveMounts(bind(c.src), td.Dir, cfg.AllocDir, c.conf)
			if c.err != "" {
				must.Error(t, err)
				must.StrContains(t, err.Error(), c.err)
				return
			}
			must.NoError(t, err)
			must.Len(t, 1, ms)
			must.Eq(t, c.wantSrc, ms[0].Source)
			must.Eq(t, "/data", ms[0].Destination)
		})
	}
}

func TestResolveMounts_Options(t *testing.T) {
	cfg := testTask(t)
	td := cfg.TaskDir()
	ms, err := resolveMounts([]Mount{
		{Field: "a", Type: "bind", Source: "local", Target: "/ro", ReadOnly: true},
		{Field: "b", Type: "bind", Source: "local", Target: "/shared", Options: []string{"rshared"}},
		{Field: "c", Type: "tmpfs", Target: "/scratch", Options: []string{"size=1024"}},
	}, td.Dir, cfg.AllocDir, defaultConfig(t))
	must.NoError(t, err)
	must.Eq(t, []specs.Mount{
		{Type: "bind", Source: td.LocalDir, Destination: "/ro", Options: []string{"rbind", "ro", "rprivate"}},
		{Type: "bind", Source: td.LocalDir, Destination: "/shared", Options: []string{"rbind", "rw", "rshared"}},
		{Type: "tmpfs", Source: "tmpfs", Destination: "/scratch", Options: []string{"nosuid", "nodev", "rw", "size=1024"}},
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
