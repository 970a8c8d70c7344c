//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestDevicePlugin runs example-jobs/gpu.nomad.hcl on an agent whose test
// device plugin (testbed/cmd/ndc-fake-device) stands in for Nomad's nvidia
// plugin: it fingerprints two fake GPUs (device nodes like /dev/fuse) as
// nvidia/gpu and reserves one with its node, a mount and
// NVIDIA_VISIBLE_DEVICES. A CDI spec for nvidia.com/gpu over the same nodes
// gives the task /dev/nvidia<i> and the spec's variable.
func TestDevicePlugin(t *testing.T) {
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc", "nomad")
	cd := testbed.StartContainerd(t)
	const image = "docker.io/library/busybox:devices"
	testbed.ImportBusybox(t, cd, image)

	nodes, specs := t.TempDir(), t.TempDir()
	for i := range 2 {
		id := fmt.Sprintf("GPU-fake-%d", i)
		writeNvidiaSpec(t, specs, i, id, filepath.Join(nodes, id))
	}
	plugin := testbed.ContainerdPluginConfig(cd) + "default_network_mode = \"host\"\n" +
		fmt.Sprintf("cdi {\n  spec_dirs = [%q]\n}\n", specs)
	device := fmt.Sprintf("plugin %q {\n  config {\n    dir    = %q\n    like   = \"/dev/fuse\"\n    vendor = \"nvidia\"\n    type   = \"gpu\"\n    name   = \"Fake GPU\"\n    env    = \"NVIDIA_VISIBLE_DEVICES\"\n  }\n}\n",
		testbed.FakeDevicePluginName, nodes)
	n := testbed.StartNomad(t, testbed.NomadConfig{PluginConfig: plugin, Extra: device, Plugins: []string{testbed.FakeDevicePlugin(t)}})
	e := &env{cd: cd, nomad: n, image: image}

	// the driver fingerprints the CDI devices; the node has the GPUs
	var gpus string
	until(t, "node with fake GPUs and CDI attribute", func() bool {
		node := e.node(t)
		if d := node.Drivers["containerd"]; d != nil {
			gpus = d.Attributes["driver.containerd.cdi.nvidia.com/gpu"]
		}
		return node.NodeResources != nil && len(node.NodeResources.Devices) == 1 && gpus != ""
	})
	must.Eq(t, "GPU-fake-0,GPU-fake-1", gpus)

	e.run(t, "gpu.nomad.hcl")
	a := e.alloc(t, "gpu", "complete")
	out := e.cli(t, "alloc", "logs", a.ID)
	t.Logf("gpu job output:\n%s", out)
	m := regexp.MustCompile(`reserved GPUs: GPU-fake-(\d)\n`).FindStringSubmatch(out)
	must.SliceLen(t, 2, m, must.Sprint(out))
	i := m[1]
	// from the device plugin: the node, the mount and the variable
	must.RegexMatch(t, regexp.MustCompile(`(?m)^c.* 10, +229 .* GPU-fake-`+i+`$`), out)
	must.StrContains(t, out, "GPU-fake-"+i+" like /dev/fuse\n")
	must.StrContains(t, out, "NVIDIA_VISIBLE_DEVICES=GPU-fake-"+i+"\n")
	// from the CDI spec: the GPU's node and the spec's variables
	must.RegexMatch(t, regexp.MustCompile(`(?m)^c.* 10, +229 .* nvidia`+i+`$`), out)
	must.StrContains(t, out, "FAKE_GPU=GPU-fake-"+i+"\n")
	must.StrContains(t, out, "NVIDIA_CDI_SPEC=nvidia.com/gpu\n")
	other := fmt.Sprint(1 - int(i[0]-'0'))
	must.StrNotContains(t, out, "nvidia"+other+"\n")
	must.StrNotContains(t, out, "GPU-fake-"+other+"\n")
	e.stopJob(t, "gpu")
}

// writeNvidiaSpec writes the CDI spec of one fake GPU, as `nvidia-ctk cdi
// generate` names them (nvidia.com/gpu=<uuid>): its node at /dev/nvidia<i>
// and FAKE_GPU=<uuid>, and the spec's NVIDIA_CDI_SPEC variable.
func writeNvidiaSpec(t *testing.T, dir string, i int, id, hostPath string) {
	t.Helper()
	spec := fmt.Sprintf(`{"cdiVersion": "0.6.0", "kind": "nvidia.com/gpu",
 "devices": [{"name": %q, "containerEdits": {"env": ["FAKE_GPU=%s"], "deviceNodes": [{"path": "/dev/nvidia%d", "hostPath": %q}]}}],
 "containerEdits": {"env": ["NVIDIA_CDI_SPEC=nvidia.com/gpu"]}}`, id, id, i, hostPath)
	must.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("gpu%d.json", i)), []byte(spec), 0o644))
}

// node returns the agent's node with its drivers and resources.
func (e *env) node(t *testing.T) *api.Node {
	t.Helper()
	cl := e.nomad.API()
	stubs, _, err := cl.Nodes().List(nil)
	must.NoError(t, err)
	for _, s := range stubs {
		if s.Name == e.nomad.NodeName() {
			node, _, err := cl.Nodes().Info(s.ID, nil)
			must.NoError(t, err)
			return node
		}
	}
	t.Fatalf("no node %s", e.nomad.NodeName())
	return nil
}
