//go:build integration

package driver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// stargzBed is a containerd with the stargz snapshotter as its proxy
// snapshotter "stargz", and a registry whose requests an access log shows.
type stargzBed struct {
	*bed
	sz  *testbed.Stargz
	log *testbed.AccessLog
}

func newStargzBed(t *testing.T) *stargzBed {
	t.Helper()
	cd, sz := testbed.StartContainerdWithStargz(t)
	b := &bed{cd: cd}
	testbed.LeakCheck(t, cd)
	reg := testbed.StartRegistry(t)
	return &stargzBed{bed: b, sz: sz, log: testbed.StartAccessLog(t, reg)}
}

// push uploads img through the access log as repoTag and returns the
// reference to pull it by.
func (sb *stargzBed) push(t *testing.T, img *testbed.Image, repoTag string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := img.Push(ctx, sb.log.Host, repoTag)
	must.NoError(t, err)
	return sb.log.Host + "/" + repoTag
}

// TestStargzLazyPull runs tasks with snapshotter "stargz": an eStargz image
// starts with its layers mounted from the registry, fetched in ranges, and
// its large file read in part is fetched in part; trust enforce refuses an
// unsigned eStargz image before any layer is fetched or mounted; an image
// that is not eStargz is pulled in full and runs.
func TestStargzLazyPull(t *testing.T) {
	sb := newStargzBed(t)
	const bigSize = 32 << 20
	lazyImg, err := testbed.BuildEStargzBusybox(bigSize)
	must.NoError(t, err)
	lazyRef := sb.push(t, lazyImg, "lazy/busybox:1")

	t.Run("enforce refuses an unsigned eStargz image before any mount", func(t *testing.T) {
		unsigned, err := testbed.BuildEStargzBusybox(1 << 20)
		must.NoError(t, err)
		ref := sb.push(t, unsigned, "signed/unsigned:1")
		before := len(sb.log.All())
		key := testbed.NewCosign(t).GenerateKeyPair(t, "trusted")
		h := sb.harness(t, fmt.Sprintf("snapshotter = \"stargz\"\ntrust {\n rule {\n  prefix = %q\n  public_keys = [%q]\n  policy = \"enforce\"\n }\n}\n",
			sb.log.Host+"/signed/", key.Public))
		err = refused(t, &imageBed{bed: sb.bed}, h, rawTaskConfig{Image: ref})
		must.StrContains(t, err.Error(), "signature")
		must.SliceEmpty(t, sb.sz.Mounts())
		for _, l := range unsigned.Manifest.Layers {
			fetched, _ := sb.log.Fetched(l.Digest.String())
			must.Zero(t, fetched, must.Sprintf("layer %s of a refused image was fetched", l.Digest))
		}
		for _, a := range sb.log.All()[before:] {
			must.False(t, strings.Contains(a.Path, "/blobs/") && a.Method == "GET",
				must.Sprintf("a refused image's blob was fetched: %+v", a))
		}
	})

	t.Run("eStargz layers are fetched in ranges, on demand", func(t *testing.T) {
		h := sb.harness(t, "snapshotter = \"stargz\"\n")
		task := newTask(t, rawTaskConfig{Image: lazyRef, Command: "sh", Args: []string{"-c", "head -c 4096 /filler/big | wc -c"}})
		ev := collectEvents(t, h, task.ID)
		start(t, h, task)
		must.Eq(t, 0, wait(t, h, task.ID, 60*time.Second).ExitCode)
		eventually(t, "the task's output", func() bool { return strings.Contains(logs(t, task, "stdout"), "4096") })
		must.True(t, ev.has("Using image "+lazyRef+"@sha256:"))
		must.SliceNotEmpty(t, sb.sz.Mounts())

		for _, l := range lazyImg.Manifest.Layers {
			fetched, whole := sb.log.Fetched(l.Digest.String())
			must.Positive(t, fetched)
			must.SliceEmpty(t, whole, must.Sprintf("layer %s was fetched whole", l.Digest))
		}
		big := lazyImg.Manifest.Layers[len(lazyImg.Manifest.Layers)-1]
		fetched, _ := sb.log.Fetched(big.Digest.String())
		t.Logf("fetched %d of the %d bytes of the large layer", fetched, big.Size)
		must.Less(t, big.Size/2, fetched)
	})

	t.Run("layers the snapshotter cannot fetch are pulled with the driver's credentials", func(t *testing.T) {
		private := testbed.StartRegistry(t, testbed.RegistryOptions{TLS: true, User: "ndc", Password: "s3cret-pw"})
		hostsDir, err := private.WriteHostsDir(t.TempDir())
		must.NoError(t, err)
		img, err := testbed.BuildEStargzBusybox(0)
		must.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err = private.Push(ctx, img, "team/lazy:1")
		must.NoError(t, err)
		mounted := len(sb.sz.Mounts())
		h := sb.harness(t, fmt.Sprintf("snapshotter = \"stargz\"\nregistry_config_dir = %q\n", hostsDir))
		runImage(t, h, rawTaskConfig{Image: private.Host + "/team/lazy:1",
			Auth: rawTaskAuth{Username: private.User, Password: private.Password}})
		must.Eq(t, mounted, len(sb.sz.Mounts()), must.Sprint("the snapshotter mounted a layer it has no credentials for"))
	})

	t.Run("an image that is not eStargz is pulled in full and runs", func(t *testing.T) {
		plain, err := testbed.BuildBusybox()
		must.NoError(t, err)
		ref := sb.push(t, plain, "plain/busybox:1")
		h := sb.harness(t, "snapshotter = \"stargz\"\n")
		runImage(t, h, rawTaskConfig{Image: ref})
		_, whole := sb.log.Fetched(plain.Manifest.Layers[0].Digest.String())
		must.SliceNotEmpty(t, whole, must.Sprint("the layer that is not eStargz was not fetched whole"))
	})
}
