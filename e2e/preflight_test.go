//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// testPreflight runs `check` of the plugin binary the agent loaded on the
// agent's own config file: the agent accepted that plugin block and
// fingerprints the driver healthy, and the check passes every line of it
// (runc may only warn), in text and in JSON.
func testPreflight(t *testing.T, e *env) {
	node, _, err := e.nomad.API().Nodes().Info(nodeID(t, e), nil)
	must.NoError(t, err)
	must.True(t, node.Drivers["containerd"].Healthy, must.Sprintf("driver: %+v", node.Drivers["containerd"]))

	bin := filepath.Join(e.nomad.Dir, "plugins", testbed.PluginName)
	config := filepath.Join(e.nomad.Dir, "agent.hcl")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "check", "-config", config).CombinedOutput()
	must.NoError(t, err, must.Sprintf("%s check -config %s:\n%s", bin, config, out))
	text := string(out)
	t.Logf("check -config %s:\n%s", config, text)
	for _, want := range []string{"✓ config: " + config, "✓ plugin_dir: " + bin + ": ", "✓ containerd: ", "✓ snapshotter: snapshotter overlayfs",
		"✓ cni bridge: ", "✓ cgroups: ", "✓ registry_config_dir: ", "✓ trust: default_policy off, 2 rule(s)", "✓ volumes: volumes.allowed_host_paths exist: " + e.hostDir} {
		must.StrContains(t, text, want)
	}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if !strings.HasPrefix(line, "✓ ") && !strings.HasPrefix(line, "! runtime: ") {
			t.Errorf("line does not pass: %s", line)
		}
	}

	out, err = exec.CommandContext(ctx, bin, "check", "-json", "-config", config).Output()
	must.NoError(t, err)
	var rep struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name, Status string
		} `json:"checks"`
	}
	must.NoError(t, json.Unmarshal(out, &rep))
	must.True(t, rep.OK)
	must.Greater(t, 8, len(rep.Checks))
}

// nodeID is the ID of the agent's client node.
func nodeID(t *testing.T, e *env) string {
	t.Helper()
	nodes, _, err := e.nomad.API().Nodes().List(nil)
	must.NoError(t, err)
	must.SliceLen(t, 1, nodes)
	return nodes[0].ID
}
