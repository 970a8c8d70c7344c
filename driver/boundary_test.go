package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shoenig/test/must"
)

// Every bind form reaches the allocation boundary through resolveMounts:
// what a relative or absolute source may reach inside the allocation.
func TestAllocBoundarySources(t *testing.T) {
	cfg := testTask(t)
	td := cfg.TaskDir()
	for _, d := range []string{"alloc/data", "alloc/tmp", "db/secrets"} {
		must.NoError(t, os.MkdirAll(filepath.Join(cfg.AllocDir, d), 0o755))
	}
	must.NoError(t, os.Symlink("../../alloc/logs", filepath.Join(td.LocalDir, "logs-link")))
	cases := []struct {
		source string
		ro     bool
		err    string
	}{
		{source: "local"},
		{source: "secrets"},
		{source: "."},
		{source: "../alloc/data"},
		{source: "../alloc/tmp"},
		{source: "../alloc/logs", ro: true},
		{source: filepath.Join(cfg.AllocDir, "alloc/data")},
		{source: "../alloc/logs", err: `alloc/logs may only be bound read-only`},
		{source: "local/logs-link", err: `volumes[0]: source "local/logs-link" (resolved to "` + td.LogDir + `") is refused: alloc/logs may only be bound read-only`},
		{source: "..", err: `is refused: it is the allocation directory itself`},
		{source: "..", ro: true, err: `it is the allocation directory itself`},
		{source: "../alloc", err: `it is the shared alloc directory, which holds alloc/logs`},
		{source: "../db/secrets", ro: true, err: `volumes[0]: source "../db/secrets" (resolved to "` + filepath.Join(cfg.AllocDir, "db/secrets") + `") is refused: it is another task's directory`},
		{source: filepath.Join(cfg.AllocDir, "db"), err: `it is another task's directory`},
	}
	for _, c := range cases {
		var p pins
		_, err := resolveMounts([]Mount{{Field: "volumes[0]", Type: "bind", Source: c.source, Target: "/data", ReadOnly: c.ro}}, td.Dir, cfg.AllocDir, defaultConfig(t), &p)
		p.close()
		if c.err == "" {
			must.NoError(t, err, must.Sprintf("%s ro=%v", c.source, c.ro))
		} else {
			must.ErrorContains(t, err, c.err, must.Sprintf("%s ro=%v", c.source, c.ro))
		}
	}
}

func TestCheckTarget(t *testing.T) {
	cases := []struct {
		target, resolved, err string
	}{
		{target: "/data", resolved: "/data"},
		{target: "/alloc/data/x", resolved: "/alloc/data/x"},
		{target: "/local/conf", resolved: "/local/conf"},
		{target: "/secrets/x", resolved: "/secrets/x"},
		{target: "/allocations", resolved: "/allocations"},
		{target: "/data", resolved: "/alloc", err: `f: target "/data" (the image resolves it to "/alloc") is refused: it would cover /alloc/logs, which stays read-only`},
		{target: "/data", resolved: "/alloc/logs/x", err: `would cover /alloc/logs, which stays read-only`},
		{target: "/data", resolved: "/local", err: `f: target "/data" (the image resolves it to "/local") is refused: it would cover /local, which Nomad mounts`},
		{target: "/data", resolved: "/secrets", err: `it would cover /secrets, which Nomad mounts`},
		{target: "/data", resolved: "/", err: `it would cover /alloc/logs`},
		{target: "/data", resolved: "/proc/sys", err: `f: target "/data" (the image resolves it to "/proc/sys") is refused: it is under /proc`},
		{target: "/secrets", resolved: "/secrets", err: `f: target "/secrets" is refused: it would cover /secrets, which Nomad mounts`},
	}
	for _, c := range cases {
		err := checkTarget("f", c.target, c.resolved)
		if c.err == "" {
			must.NoError(t, err, must.Sprint(c))
		} else {
			must.ErrorContains(t, err, c.err, must.Sprint(c))
		}
	}
}
