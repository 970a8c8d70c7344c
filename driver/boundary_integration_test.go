//go:build integration

package driver

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// testAllocBoundary attacks the allocation's own boundaries through every
// bind form: alloc/logs writable, the allocation root, a sibling task's
// secrets, and a target an image symlink redirects onto /alloc. Afterwards
// the host, alloc/logs and the sibling's secret are as they were.
func testAllocBoundary(t *testing.T, b *bed) {
	c := newCanary(t)
	const secret = "sibling secret\n"
	// plants a link for logmon, writes the sibling's secret, reads all it can
	attack := "ln -sf " + c.file + " /x/web.stdout.9 2>/dev/null; ln -sf " + c.file + " /x/logs/web.stdout.9 2>/dev/null; " +
		"echo pwned > /x/token 2>/dev/null; echo pwned > /x/db/secrets/token 2>/dev/null; cat /x/token /x/db/secrets/token 2>/dev/null; echo END"
	sibling := func(task *drivers.TaskConfig) {
		dir := filepath.Join(task.AllocDir, "db", "secrets")
		must.NoError(t, os.MkdirAll(dir, 0o700))
		must.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte(secret), 0o600))
	}
	after := func(t *testing.T, task *drivers.TaskConfig) {
		c.check(t)
		got, err := os.ReadFile(filepath.Join(task.AllocDir, "db", "secrets", "token"))
		must.NoError(t, err)
		must.Eq(t, secret, string(got), must.Sprint("the sibling's secret was changed"))
		entries, err := os.ReadDir(task.TaskDir().LogDir)
		must.NoError(t, err)
		for _, e := range entries {
			must.True(t, e.Type()&os.ModeSymlink == 0, must.Sprintf("a symlink was planted in alloc/logs: %s", e.Name()))
		}
	}
	forms := []struct {
		name string
		ro   bool
		set  func(r *rawTaskConfig, source string)
	}{
		{"volumes", false, func(r *rawTaskConfig, s string) { r.Volumes = []string{s + ":/x"} }},
		{"mount", false, func(r *rawTaskConfig, s string) { r.Mount = []rawMount{{Type: "bind", Source: s, Target: "/x"}} }},
		{"mounts", false, func(r *rawTaskConfig, s string) { r.Mounts = []rawMount{{Type: "bind", Source: s, Target: "/x"}} }},
		{"bind", false, func(r *rawTaskConfig, s string) { r.Bind = []map[string]string{{s: "/x"}} }},
		{"bind_read_only", true, func(r *rawTaskConfig, s string) { r.BindReadOnly = []map[string]string{{s: "/x"}} }},
	}
	sources := []struct{ name, source, err string }{
		{"alloc/logs", "../alloc/logs", "alloc/logs may only be bound read-only"},
		{"allocation root", "..", "it is the allocation directory itself"},
		{"sibling secrets", "../db/secrets", "it is another task's directory"},
	}
	for _, f := range forms {
		for _, s := range sources {
			if f.ro && s.name == "alloc/logs" {
				continue // read-only alloc/logs is allowed: /alloc/logs already is
			}
			t.Run(f.name+" "+s.name, func(t *testing.T) {
				raw := sh(attack)
				f.set(&raw, s.source)
				task := newTask(t, raw)
				refuse(t, b, "", task, sibling, s.err)
				after(t, task)
			})
		}
	}

	// an image whose /data is a symlink to /alloc redirects a bind at /data
	reg := testbed.StartRegistry(t)
	layer, err := testbed.RawLayer(testbed.RawEntry{Name: "data", Type: tar.TypeSymlink, Linkname: "/alloc"})
	must.NoError(t, err)
	pushBusyboxWith(t, reg, layer, "hostile/data-to-alloc:1")
	ref := reg.Host + "/hostile/data-to-alloc:1"
	for _, tc := range []struct{ name, source, err string }{
		{"alloc data", "../alloc/data", `volumes[0]: target "/data" (the image resolves it to "/alloc") is refused: it would cover /alloc/logs, which stays read-only`},
		{"own local", "local", `(the image resolves it to "/alloc") is refused`},
	} {
		t.Run("image symlink redirects the target, "+tc.name, func(t *testing.T) {
			raw := sh("ln -sf " + c.file + " /alloc/logs/web.stdout.9; ln -sf " + c.file + " /data/logs/web.stdout.9; echo END")
			raw.Image = ref
			raw.Volumes = []string{tc.source + ":/data"}
			task := newTask(t, raw)
			refuse(t, b, "", task, func(task *drivers.TaskConfig) {
				must.NoError(t, os.MkdirAll(filepath.Join(task.TaskDir().SharedAllocDir, "data"), 0o755))
				sibling(task)
			}, tc.err)
			after(t, task)
		})
	}
}
