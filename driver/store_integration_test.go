//go:build integration

package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// testImageStore: two jobs load archives with different contents under
// the name another job runs from the local store. Neither changes what
// that name, or the other job's, resolves to.
func testImageStore(t *testing.T, b *bed) {
	ctx := b.cd.Context()
	is := b.cd.Client.ImageService()
	stored := func(ref string) string {
		rec, err := is.Get(ctx, ref)
		must.NoError(t, err)
		return rec.Target.Digest.String()
	}
	before := stored(testImage)

	// an archive of busybox plus /pwned, written as a hostile job would
	base, err := testbed.BuildBusybox()
	must.NoError(t, err)
	marker, err := testbed.NewLayer(testbed.File("pwned", 0o644, []byte("from job A\n")))
	must.NoError(t, err)
	evil, err := base.Derive(nil, marker)
	must.NoError(t, err)
	export := func(name, dir string) {
		const tmp = "docker.io/library/export:tmp"
		img, err := testbed.ImportImage(ctx, b.cd.Client, evil, tmp, "")
		must.NoError(t, err)
		f, err := os.Create(filepath.Join(dir, name))
		must.NoError(t, err)
		must.NoError(t, b.cd.Client.Export(ctx, f, archive.WithImage(is, img.Name())))
		must.NoError(t, f.Close())
		must.NoError(t, is.Delete(ctx, tmp))
	}
	plain := func(name, dir string) {
		f, err := os.Create(filepath.Join(dir, name))
		must.NoError(t, err)
		must.NoError(t, b.cd.Client.Export(ctx, f, archive.WithImage(is, testImage)))
		must.NoError(t, f.Close())
	}
	load := func(script string, write func(string, string)) *drivers.TaskConfig {
		raw := sh(script)
		raw.Load, raw.ForcePull = "local/image.tar", true
		task := newTask(t, raw)
		runWith(t, b, "", task, func(task *drivers.TaskConfig) { write("image.tar", task.TaskDir().LocalDir) })
		return task
	}

	// job A loads its archive as busybox:test and runs it
	load("test -e /pwned && echo END", export)
	must.Eq(t, before, stored(testImage), must.Sprint("job A's load changed what "+testImage+" resolves to"))
	// job B runs busybox:test from the local store: not job A's image
	runWith(t, b, "", newTask(t, sh("test -e /pwned || echo END")), nil)
	// job C loads other contents under the same name: its own, not job A's
	load("test -e /pwned || echo END", plain)
	must.Eq(t, before, stored(testImage))
}
