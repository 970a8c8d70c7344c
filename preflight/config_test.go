package preflight

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/shoenig/test/must"
	"github.com/zclconf/go-cty/cty/msgpack"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
)

// setConfigError is what the driver's SetConfig says about a plugin config
// body that Nomad's loader hands it: the body decoded (HCL 2, independently
// of the check's HCL 1 agent file route) through the driver's ConfigSchema
// and msgpack encoded.
func setConfigError(t *testing.T, body string) error {
	t.Helper()
	d := driver.New(hclog.NewNullLogger())
	t.Cleanup(d.Shutdown)
	schema, err := d.ConfigSchema()
	must.NoError(t, err)
	spec, diags := hclspecutils.Convert(schema)
	must.False(t, diags.HasErrors(), must.Sprint(diags))
	f, diags := hclsyntax.ParseConfig([]byte(body), "plugin.hcl", hcl.InitialPos)
	must.False(t, diags.HasErrors(), must.Sprint(diags))
	val, diags := hcldec.Decode(f.Body, spec, nil)
	must.False(t, diags.HasErrors(), must.Sprint(diags))
	b, err := msgpack.Marshal(val, val.Type())
	must.NoError(t, err)
	return d.SetConfig(&base.Config{PluginConfig: b})
}

// writeAgentConfig writes a Nomad agent config file with a client block
// and the plugin block around body into dir, and an executable named
// containerd into the agent's plugin dir (dir/data/plugins).
func writeAgentConfig(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "client.hcl")
	src := "data_dir = \"" + filepath.Join(dir, "data") + "\"\nclient {\n  enabled = true\n}\nplugin \"containerd\" {\n  config {\n" + body + "\n  }\n}\n"
	must.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	must.NoError(t, os.MkdirAll(filepath.Join(dir, "data", "plugins"), 0o755))
	must.NoError(t, os.WriteFile(filepath.Join(dir, "data", "plugins", "containerd"), []byte("#!/bin/sh\n"), 0o755))
	return path
}

// writePublicKey writes a PEM ECDSA P-256 public key, as cosign.pub is.
func writePublicKey(t *testing.T, path string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	must.NoError(t, err)
	must.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
}

// TestConfigMessagesAreTheDrivers drives the check's config line and the
// driver's SetConfig with the same plugin config: both accept the same
// bodies, and the check says exactly what the agent would log.
func TestConfigMessagesAreTheDrivers(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "cosign.pub")
	writePublicKey(t, key)
	notAKey := filepath.Join(dir, "not-a-key.pub")
	must.NoError(t, os.WriteFile(notAKey, []byte("hello\n"), 0o644))

	cases := []struct {
		name, body string
		want       string // part of the message; "" for a valid config
	}{
		{name: "defaults", body: ""},
		{name: "full", body: `namespace = "jobs"
snapshotter = "native"
image_pull_timeout = "10m"
trust {
  default_policy = "warn"
  rule {
    prefix      = "registry.example.com/team/"
    public_keys = ["` + key + `"]
  }
}
volumes {
  enabled            = true
  allowed_host_paths = ["/srv"]
}
cni {
  subnet = "10.99.0.0/16"
}`},
		{name: "snapshotter", body: `snapshotter = "aufs"`, want: `snapshotter: "aufs" is not one of`},
		{name: "namespace", body: `namespace = "a b"`, want: `namespace: "a b" may only hold`},
		{name: "runtime not allowed", body: `runtime = "io.containerd.kata.v2"`, want: `runtime: "io.containerd.kata.v2" is not in allow_runtimes`},
		{name: "duration", body: `image_pull_timeout = "soon"`, want: "image_pull_timeout"},
		{name: "relative registry dir", body: `registry_config_dir = "certs.d"`, want: `registry_config_dir: "certs.d" must be an absolute path`},
		{name: "host pid", body: `default_pid_mode = "host"`, want: `default_pid_mode: "host" needs allow_host_pid = true`},
		{name: "cni subnet", body: "cni {\n  subnet = \"10.0.0.0/33\"\n}", want: "cni.subnet"},
		{name: "network mode", body: `default_network_mode = "overlay"`, want: "default_network_mode"},
		{name: "unknown cap", body: `allow_caps = ["CHOWN", "FLY"]`, want: "allow_caps"},
		{name: "trust key missing", body: "trust {\n  rule {\n    prefix = \"registry.example.com/\"\n    public_keys = [\"" + filepath.Join(dir, "gone.pub") + "\"]\n  }\n}", want: "trust.rule[0].public_keys"},
		{name: "trust key unreadable", body: "trust {\n  rule {\n    prefix = \"registry.example.com/\"\n    public_keys = [\"" + dir + "\"]\n  }\n}", want: "failed to read the key file"},
		{name: "trust key not a key", body: "trust {\n  rule {\n    prefix = \"registry.example.com/\"\n    public_keys = [\"" + notAKey + "\"]\n  }\n}", want: "no PEM block"},
		{name: "relative host path", body: "volumes {\n  enabled = true\n  allowed_host_paths = [\"srv\"]\n}", want: `volumes.allowed_host_paths: "srv" must be an absolute path`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agentErr := setConfigError(t, tc.body)
			path := writeAgentConfig(t, t.TempDir(), tc.body)
			conf, res := checkConfig(path)
			if tc.want == "" {
				must.NoError(t, agentErr)
				must.NotNil(t, conf)
				must.Eq(t, Pass, res.Status, must.Sprint(res.Detail))
				return
			}
			must.Error(t, agentErr)
			must.StrContains(t, agentErr.Error(), tc.want)
			must.Nil(t, conf)
			must.Eq(t, Fail, res.Status)
			must.Eq(t, path+": "+agentErr.Error(), res.Detail)
			must.NotEq(t, "", res.Fix)
		})
	}
}

// TestConfigSchemaErrors: what the agent's plugin loader refuses before the
// driver sees it (an unknown option, a wrong type) fails the config line
// with the option named.
func TestConfigSchemaErrors(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"unknown option", `snapshoter = "native"`, "snapshoter"},
		{"wrong type", `allow_privileged = "maybe"`, "allow_privileged"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conf, res := checkConfig(writeAgentConfig(t, t.TempDir(), tc.body))
			must.Nil(t, conf)
			must.Eq(t, Fail, res.Status)
			must.StrContains(t, res.Detail, tc.want)
		})
	}
}

// TestLoadAgentConfig reads the plugin block the way the agent does: from
// a file or from a directory's .hcl and .json files in name order, a later
// block replacing an earlier one; no block means the defaults.
func TestLoadAgentConfig(t *testing.T) {
	dir := t.TempDir()
	must.NoError(t, os.WriteFile(filepath.Join(dir, "00-base.hcl"), []byte("plugin \"containerd\" {\n  config {\n    namespace = \"first\"\n  }\n}\nplugin \"raw_exec\" {\n  config {\n    enabled = true\n  }\n}\n"), 0o644))
	must.NoError(t, os.WriteFile(filepath.Join(dir, "10-override.json"), []byte(`{"data_dir": "/srv/nomad", "plugin": {"containerd": {"config": {"namespace": "second"}}}}`), 0o644))
	must.NoError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("not config"), 0o644))

	ac, err := loadAgentConfig(dir)
	must.NoError(t, err)
	must.Eq(t, filepath.Join(dir, "10-override.json"), ac.src)
	must.Eq(t, "/srv/nomad/plugins", ac.pluginDir)
	conf, err := ValidateConfig(ac.plugin)
	must.NoError(t, err)
	must.Eq(t, "second", conf.Namespace)

	empty := t.TempDir()
	must.NoError(t, os.WriteFile(filepath.Join(empty, "client.hcl"), []byte("client {\n  enabled = true\n}\n"), 0o644))
	must.NoError(t, os.WriteFile(filepath.Join(empty, "plugins.hcl"), []byte("data_dir = \"/srv/nomad\"\nplugin_dir = \"/opt/nomad/plugins\"\n"), 0o644))
	ac, err = loadAgentConfig(empty)
	must.NoError(t, err)
	must.Nil(t, ac.plugin)
	must.StrContains(t, ac.src, "the defaults apply")
	must.Eq(t, "/opt/nomad/plugins", ac.pluginDir)

	_, err = loadAgentConfig(filepath.Join(empty, "missing.hcl"))
	must.ErrorContains(t, err, "no such file")

	bad := filepath.Join(empty, "bad.hcl")
	must.NoError(t, os.WriteFile(bad, []byte("plugin \"containerd\" {\n"), 0o644))
	_, err = loadAgentConfig(bad)
	must.ErrorContains(t, err, "failed to parse agent config "+bad)
	must.True(t, strings.HasPrefix(err.Error(), "failed to parse"))
}

// TestCheckPluginBinary: the agent loads the driver only from an
// executable named containerd in its plugin dir.
func TestCheckPluginBinary(t *testing.T) {
	cases := []struct {
		name   string
		make   func(path string)
		status Status
		want   string
	}{
		{"installed", func(p string) { must.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)) }, Pass, "the agent loads the driver from it"},
		{"missing", func(string) {}, Fail, "no such file or directory; Nomad loads the driver only from a file in plugin_dir named \"containerd\""},
		{"not executable", func(p string) { must.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644)) }, Fail, "is not an executable file"},
		{"a directory", func(p string) { must.NoError(t, os.Mkdir(p, 0o755)) }, Fail, "is not an executable file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.make(filepath.Join(dir, "containerd"))
			r := checkPluginBinary(dir)
			must.Eq(t, tc.status, r.Status)
			must.StrContains(t, r.Detail, tc.want)
			if tc.status == Fail {
				must.StrContains(t, r.Fix, "install nomad-driver-containerd as "+filepath.Join(dir, "containerd"))
			}
		})
	}
}
