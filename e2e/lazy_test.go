//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestLazyPullExample runs example-jobs/lazy.nomad.hcl on an agent whose
// plugin uses the stargz snapshotter: the eStargz image's layers are read
// from the registry in ranges, and of its large file only a little.
func TestLazyPullExample(t *testing.T) {
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc", "nomad", "docker-registry", testbed.StargzBin)
	cd, sz := testbed.StartContainerdWithStargz(t)
	reg := testbed.StartRegistry(t)
	log := testbed.StartAccessLog(t, reg)
	const bigSize = 32 << 20
	img, err := testbed.BuildEStargzBusybox(bigSize)
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = img.Push(ctx, log.Host, "team/app:1-esgz")
	must.NoError(t, err)

	plugin := testbed.ContainerdPluginConfig(cd) + "snapshotter = \"stargz\"\ndefault_network_mode = \"host\"\n"
	n := testbed.StartNomad(t, testbed.NomadConfig{PluginConfig: plugin, CgroupParent: fmt.Sprintf("/ndc-e2e-lazy-%d", os.Getpid())})
	e := &env{cd: cd, nomad: n}

	e.runWith(t, "lazy.nomad.hcl", "image="+log.Host+"/team/app:1-esgz", "file=/filler/big")
	a := e.alloc(t, "lazy", "complete")
	out := e.cli(t, "alloc", "logs", a.ID)
	must.StrContains(t, out, "4096")
	must.StrContains(t, out, "read a little of a lazily pulled image")
	must.SliceNotEmpty(t, sz.Mounts())

	for _, l := range img.Manifest.Layers {
		fetched, whole := log.Fetched(l.Digest.String())
		must.SliceEmpty(t, whole, must.Sprintf("layer %s was fetched whole", l.Digest))
		t.Logf("layer %s: fetched %d of %d bytes", l.Digest, fetched, l.Size)
	}
	big := img.Manifest.Layers[len(img.Manifest.Layers)-1]
	fetched, _ := log.Fetched(big.Digest.String())
	must.Less(t, big.Size/2, fetched)
	e.stopJob(t, "lazy")
}
