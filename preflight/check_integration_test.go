//go:build integration

package preflight

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// bed is a node that the check should find healthy: the test bed's
// containerd, the reference CNI plugins with a named network next to the
// built-in one, a registry hosts tree, a trust key and a volume path.
type bed struct {
	address, binDir, confDir, netnsDir, registryDir, key, hostPath string
}

func newBed(t *testing.T) *bed {
	cd := testbed.StartContainerd(t)
	n := testbed.NewCNINet(t)
	dir := t.TempDir()
	b := &bed{address: cd.Address, binDir: n.BinDir, confDir: n.ConfDir, netnsDir: filepath.Join(dir, "netns"),
		registryDir: filepath.Join(dir, "certs.d"), key: filepath.Join(dir, "cosign.pub"), hostPath: filepath.Join(dir, "srv")}
	lan := `{"cniVersion": "1.0.0", "name": "lan", "plugins": [{"type": "bridge", "bridge": "` + n.Bridge + `", "ipam": {"type": "host-local", "subnet": "` + n.Subnet + `"}}, {"type": "portmap", "capabilities": {"portMappings": true}}]}`
	must.NoError(t, os.WriteFile(filepath.Join(n.ConfDir, "10-lan.conflist"), []byte(lan), 0o644))
	must.NoError(t, os.MkdirAll(filepath.Join(b.registryDir, "localhost:5000"), 0o755))
	must.NoError(t, os.WriteFile(filepath.Join(b.registryDir, "localhost:5000", "hosts.toml"), []byte("server = \"http://localhost:5000\"\n[host.\"http://localhost:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"), 0o644))
	writePublicKey(t, b.key)
	must.NoError(t, os.Mkdir(b.hostPath, 0o755))
	return b
}

// body is the plugin config for the bed, with edit applied to its fields.
func (b bed) body() string {
	return `address = "` + b.address + `"
registry_config_dir = "` + b.registryDir + `"
trust {
  rule {
    prefix      = "localhost:5000/"
    public_keys = ["` + b.key + `"]
  }
}
volumes {
  enabled            = true
  allowed_host_paths = ["` + b.hostPath + `"]
}
cni {
  bin_dir   = "` + b.binDir + `"
  conf_dir  = "` + b.confDir + `"
  netns_dir = "` + b.netnsDir + `"
}
`
}

// runCheck runs the check command on an agent config with body and returns
// its exit code and its lines.
func runCheck(t *testing.T, body string, extra ...string) (int, string) {
	t.Helper()
	path := writeAgentConfig(t, t.TempDir(), body)
	var out, errOut bytes.Buffer
	code := Main(context.Background(), append([]string{"-config", path}, extra...), &out, &errOut)
	must.Eq(t, "", errOut.String())
	t.Logf("check -config %s:\n%s", path, out.String())
	return code, out.String()
}

// TestCheckHealthyBed: every line passes (runc may only warn about a
// breakout fix the node's runc lacks), the exit code is 0, and -json says
// the same.
func TestCheckHealthyBed(t *testing.T) {
	b := newBed(t)
	code, out := runCheck(t, b.body())
	must.Eq(t, 0, code)
	for _, want := range []string{"✓ config:", "✓ plugin_dir: ", "✓ containerd: containerd 2.2.1", "runtime: runtime io.containerd.runc.v2", "✓ snapshotter: snapshotter overlayfs", `✓ userns: userns_mode = "auto" can run`,
		`✓ cni bridge:`, `✓ cni lan: network "lan"`, "✓ cgroups: cgroup v", "✓ registry_config_dir: registry_config_dir " + b.registryDir + ": hosts for localhost:5000",
		"✓ trust: default_policy off, 1 rule(s), keys readable: " + b.key, "✓ volumes: volumes.allowed_host_paths exist: " + b.hostPath} {
		must.StrContains(t, out, want)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "✓ ") && !strings.HasPrefix(line, "! runtime: ") {
			t.Errorf("line does not pass: %s", line)
		}
	}

	code, js := runCheck(t, b.body(), "-json")
	must.Eq(t, 0, code)
	var rep Report
	must.NoError(t, json.Unmarshal([]byte(js), &rep))
	must.True(t, rep.OK)
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
	}
	must.Eq(t, []string{"config", "plugin_dir", "containerd", "runtime", "snapshotter", "userns", "cni bridge", "cni lan", "cgroups",
		"registry_config_dir", "trust", "volumes", "init", "cdi"}, names)
}

// TestCheckBrokenBeds: each fault is named on a ✗ line with a fix, and the
// check exits non-zero.
func TestCheckBrokenBeds(t *testing.T) {
	b := newBed(t)
	// a copy of bin_dir without portmap
	noPortmap := t.TempDir()
	entries, err := os.ReadDir(b.binDir)
	must.NoError(t, err)
	for _, e := range entries {
		if e.Name() == "portmap" {
			continue
		}
		copyFile(t, filepath.Join(b.binDir, e.Name()), filepath.Join(noPortmap, e.Name()))
	}
	keyDir := t.TempDir() // a directory where the key file should be: it cannot be read
	cases := []struct {
		name string
		edit func(b *bed) string
		want []string
	}{
		{"socket missing", func(b *bed) string { b.address = "/run/ndc-no-such-dir/containerd.sock"; return b.body() },
			[]string{"✗ containerd: socket /run/ndc-no-such-dir/containerd.sock: no such file or directory (fix: start containerd", "✗ runtime: not checked", "✗ snapshotter: not checked", "✗ userns: not checked"}},
		{"cni plugin removed", func(b *bed) string { b.binDir = noPortmap; return b.body() },
			[]string{`✗ cni bridge: the built-in "bridge" network needs plugins portmap, missing from ` + noPortmap, `✗ cni lan: network "lan"`, "needs plugins portmap"}},
		{"bad plugin option", func(b *bed) string { return b.body() + "snapshotter = \"overlay\"\n" },
			[]string{`✗ config: `, `invalid plugin config: snapshotter: "overlay" is not one of overlayfs`}},
		{"unreadable trust key", func(b *bed) string { b.key = keyDir; return b.body() },
			[]string{`✗ config: `, `trust.rule[0].public_keys: "` + keyDir + `": failed to read the key file`}},
		{"snapshotter not loaded", func(b *bed) string { return b.body() + "snapshotter = \"zfs\"\n" },
			[]string{`✗ snapshotter: snapshotter "zfs"`}},
		{"registry hosts unparsable", func(b *bed) string {
			must.NoError(t, os.MkdirAll(filepath.Join(b.registryDir, "bad.example.com"), 0o755))
			must.NoError(t, os.WriteFile(filepath.Join(b.registryDir, "bad.example.com", "hosts.toml"), []byte("server = [\n"), 0o644))
			return b.body()
		}, []string{"✗ registry_config_dir: registry_config_dir ", "/bad.example.com/hosts.toml: ", "containerd would ignore it"}},
		{"host path missing", func(b *bed) string { b.hostPath = "/nonexistent-ndc"; return b.body() },
			[]string{"✗ volumes: volumes.allowed_host_paths do not exist: /nonexistent-ndc (no such file or directory)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := *b
			c.registryDir = t.TempDir()
			copyDir(t, b.registryDir, c.registryDir)
			code, out := runCheck(t, tc.edit(&c))
			must.Eq(t, 1, code)
			for _, w := range tc.want {
				must.StrContains(t, out, w)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "✗ ") && !strings.HasPrefix(line, "✗ runtime: not checked") && !strings.HasPrefix(line, "✗ snapshotter: not checked") {
					must.StrContains(t, line, "(fix: ")
				}
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	must.NoError(t, err)
	defer in.Close()
	st, err := in.Stat()
	must.NoError(t, err)
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, st.Mode().Perm())
	must.NoError(t, err)
	_, err = io.Copy(out, in)
	must.NoError(t, err)
	must.NoError(t, out.Close())
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	must.NoError(t, filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		copyFile(t, p, filepath.Join(to, rel))
		return nil
	}))
}
