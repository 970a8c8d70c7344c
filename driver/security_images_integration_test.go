//go:build integration

package driver

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// testLogFifos: with Nomad's logmon collecting the logs, a log fifo
// swapped for a symlink or a file (by anything that can write alloc/logs)
// is refused, and the task itself cannot touch alloc/logs.
func testLogFifos(t *testing.T, b *bed) {
	const logmon = "logging {\n collector = \"nomad\"\n}\n"
	c := newCanary(t)
	for _, tc := range []struct {
		name, kind string
		swap       func(path string)
	}{
		{name: "symlink to a host file", kind: "a symlink", swap: func(p string) { must.NoError(t, os.Symlink(c.file, p)) }},
		{name: "regular file", kind: "a regular file", swap: func(p string) { must.NoError(t, os.WriteFile(p, nil, 0o644)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := newTask(t, sh("echo pwned; echo END"))
			refuse(t, b, logmon, task, func(task *drivers.TaskConfig) {
				must.NoError(t, os.Remove(task.StdoutPath))
				tc.swap(task.StdoutPath)
			}, ".stdout.fifo\" is not a named pipe ("+tc.kind+"): refused")
			c.check(t)
		})
	}

	// alloc/logs swapped for a symlink to another directory of the
	// allocation (a sibling's logs) that holds a fifo of the same name: the
	// last component is a fifo, the directory above it is the symlink
	t.Run("symlinked directory above the fifo", func(t *testing.T) {
		task := newTask(t, sh("echo pwned; echo END"))
		refuse(t, b, logmon, task, func(task *drivers.TaskConfig) {
			logDir := task.TaskDir().LogDir
			other := filepath.Join(task.AllocDir, "db", "logs")
			must.NoError(t, os.MkdirAll(filepath.Dir(other), 0o755))
			must.NoError(t, os.Rename(logDir, other))
			must.NoError(t, os.Symlink("../db/logs", logDir))
		}, `/alloc/logs/.web.stdout.fifo" is refused: a directory on its path beneath "`)
		c.check(t)
	})

	t.Run("alloc/logs cannot be covered", func(t *testing.T) {
		raw := sh("ln -sf " + c.file + " /alloc/logs/web.stdout.0; echo END")
		raw.Volumes = []string{"../alloc:/alloc"}
		refuse(t, b, "", newTask(t, raw), nil, `volumes[0]: target "/alloc" is refused: it would cover /alloc/logs`)
		c.check(t)
	})

	t.Run("alloc/logs is read-only inside", func(t *testing.T) {
		task := newTask(t, sh("ln -sf "+c.file+" /alloc/logs/.web.stdout.fifo 2>/dev/null || echo link-refused; "+
			"rm -f /alloc/logs/.web.stderr.fifo 2>/dev/null || echo rm-refused; touch /alloc/logs/x 2>/dev/null || echo touch-refused; "+
			"mv /alloc/logs /alloc/moved 2>/dev/null || echo mv-refused; echo END"))
		out := runWith(t, b, logmon, task, nil)
		for _, w := range []string{"link-refused", "rm-refused", "touch-refused", "mv-refused"} {
			must.StrContains(t, out, w)
		}
		for _, p := range []string{task.StdoutPath, task.StderrPath} {
			st, err := os.Lstat(p)
			must.NoError(t, err)
			must.True(t, st.Mode()&os.ModeNamedPipe != 0, must.Sprintf("%s is now %s", p, st.Mode()))
		}
		_, err := os.Stat(filepath.Join(task.TaskDir().LogDir, "x"))
		must.True(t, os.IsNotExist(err))
		c.check(t)
	})
}

// testHostileImages pulls images built from crafted layers through the
// driver and runs them; whether a layer unpacks or is refused, the host
// stays untouched.
func testHostileImages(t *testing.T, b *bed) {
	reg := testbed.StartRegistry(t)
	base, err := testbed.BuildBusybox()
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	push := func(repo string, edit func(*ocispec.ImageConfig), layers ...testbed.Layer) string {
		img, err := base.Derive(edit, layers...)
		must.NoError(t, err)
		_, err = reg.Push(ctx, img, repo)
		must.NoError(t, err)
		return reg.Host + "/" + repo
	}

	c := newCanary(t)
	layers, err := testbed.HostileLayers(c.dir)
	must.NoError(t, err)
	names := make([]string, 0, len(layers))
	for n := range layers {
		names = append(names, n)
	}
	sort.Strings(names)
	// what the task tries once it runs: write through every path the layers aimed at the host
	attack := "for d in /escape-abs /escape-rel; do echo pwned > $d/from-task 2>/dev/null; echo pwned >> $d/" + testbed.CanaryName + " 2>/dev/null; done; " +
		"echo pwned >> /hard-abs 2>/dev/null; echo pwned >> /hard-rel 2>/dev/null; echo END"
	for _, name := range names {
		t.Run("layer "+name, func(t *testing.T) {
			raw := sh(attack)
			raw.Image = push("hostile/"+name+":1", nil, layers[name])
			task := newTask(t, raw)
			h, err := startWith(t, b, "", task, nil)
			if err != nil {
				t.Logf("refused: %v", err)
				b.nothingLeft(t, task)
			} else {
				impl := h.Impl()
				t.Cleanup(func() { _ = impl.DestroyTask(task.ID, true) })
				res := wait(t, h, task.ID, 30*time.Second)
				t.Logf("ran: exit %d", res.ExitCode)
			}
			c.check(t)
		})
	}

	t.Run("image volumes create no host paths", func(t *testing.T) {
		probe := filepath.Join(t.TempDir(), "image-volume")
		raw := sh("awk '{print $5}' /proc/self/mountinfo | grep -x -e /data -e " + probe + " || echo no-volume-mounts; echo END")
		raw.Image = push("hostile/volumes:1", func(cfg *ocispec.ImageConfig) {
			cfg.Volumes = map[string]struct{}{"/data": {}, probe: {}, "../../../../" + probe + "-dotdot": {}}
		})
		out := runWith(t, b, "", newTask(t, raw), nil)
		must.StrContains(t, out, "no-volume-mounts")
		for _, p := range []string{probe, probe + "-dotdot"} {
			_, err := os.Lstat(p)
			must.True(t, os.IsNotExist(err), must.Sprintf("image volume created host path %s", p))
		}
	})

	t.Run("image working dir in proc fd", func(t *testing.T) {
		raw := sh("echo pwned > ../../../../" + c.file)
		raw.Image = push("hostile/workdir:1", func(cfg *ocispec.ImageConfig) { cfg.WorkingDir = "/proc/self/fd/7" })
		refuse(t, b, "", newTask(t, raw), nil, `image config WorkingDir "/proc/self/fd/7" is refused: it is under /proc`)
		c.check(t)
	})
}
