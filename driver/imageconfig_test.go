package driver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// writePublicKey writes a fresh ECDSA P-256 public key in PEM.
func writePublicKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	must.NoError(t, err)
	p := filepath.Join(t.TempDir(), "cosign.pub")
	must.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644))
	return p
}

// keyless is a trust block with one keyless rule: trusted_root (unless
// empty) and one identity block of the given lines.
func keyless(trustedRoot, identity string) string {
	rootLine := ""
	if trustedRoot != "" {
		rootLine = " trusted_root = \"" + trustedRoot + "\"\n"
	}
	return "trust {\n rule {\n prefix = \"registry.example.com/\"\n" + rootLine + " identity {\n " + identity + "\n }\n }\n}"
}

func TestParseImageConfig(t *testing.T) {
	key := writePublicKey(t)
	root := testbed.NewVirtualSigstore(t).RootPath
	cases := []struct {
		name, body string
		err        string
	}{
		{name: "defaults", body: ``},
		{name: "auth", body: "auth {\n config = \"/etc/docker/config.json\"\n helper = \"ecr-login\"\n}"},
		{name: "relative auth config", body: "auth {\n config = \"config.json\"\n}", err: `auth.config: "config.json" must be an absolute path`},
		{name: "helper path", body: "auth {\n helper = \"/usr/bin/x\"\n}", err: `auth.helper: "/usr/bin/x" must be a helper name`},
		{name: "activity timeout", body: `pull_activity_timeout = "never"`, err: `pull_activity_timeout: "never" is not a duration`},
		{name: "trust rule", body: "trust {\n default_policy = \"warn\"\n rule {\n prefix = \"registry.example.com/team/\"\n public_keys = [\"" + key + "\"]\n }\n}"},
		{name: "bad policy", body: "trust {\n default_policy = \"maybe\"\n}", err: "trust.default_policy"},
		{name: "missing key file", body: "trust {\n rule {\n prefix = \"registry.example.com/\"\n public_keys = [\"/nonexistent.pub\"]\n }\n}", err: `trust.rule[0].public_keys: "/nonexistent.pub"`},
		{name: "rule without keys", body: "trust {\n rule {\n prefix = \"registry.example.com/\"\n }\n}", err: "trust.rule[0].public_keys"},
		{name: "threshold", body: "trust {\n rule {\n prefix = \"registry.example.com/\"\n public_keys = [\"" + key + "\"]\n threshold = 2\n }\n}", err: "trust.rule[0].threshold: 2: must be between 1 and the number of public keys and identities of the rule (1)"},
		{name: "keyless rule", body: keyless(root, "issuer = \"https://token.actions.githubusercontent.com\"\n subject_regexp = \"^https://github.com/example/payments/\"")},
		{name: "identity without root", body: keyless("", "issuer = \"https://x\"\n subject = \"y\""), err: "trust.rule[0].trusted_root: a rule with identities needs a trusted root file"},
		{name: "identity without subject", body: keyless(root, "issuer = \"https://x\""), err: "trust.rule[0].identity[0].subject: give exactly one of subject and subject_regexp"},
		{name: "bad subject regexp", body: keyless(root, "issuer = \"https://x\"\n subject_regexp = \"(\""), err: `trust.rule[0].identity[0].subject_regexp: "(": not a regular expression`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if conf := configCase(t, c.body, c.err); conf != nil {
				must.Eq(t, 2*time.Minute, conf.Images.ActivityTimeout)
				must.NotNil(t, conf.Images.Trust)
			}
		})
	}
}

func TestCheckTrustPrefix(t *testing.T) {
	key := writePublicKey(t)
	conf, err := parseConfig(decodePluginHCL(t, "trust {\n rule {\n prefix = \"registry.example.com/team/\"\n public_keys = [\""+key+"\"]\n }\n"+
		" rule {\n prefix = \"registry.example.com/lax/\"\n public_keys = [\""+key+"\"]\n policy = \"warn\"\n }\n}"))
	must.NoError(t, err)
	tc := conf.Images.Trust
	cases := []struct {
		prefix, ref, err string
	}{
		{prefix: "", ref: "docker.io/library/busybox:1"},
		{prefix: "registry.example.com/team/", ref: "registry.example.com/team/app:1"},
		{prefix: "registry.example.com/", ref: "registry.example.com/team/app:1"},
		{prefix: "registry.example.com/team/", ref: "docker.io/library/busybox:1", err: `does not start with`},
		{prefix: "registry.example.com/lax/", ref: "registry.example.com/lax/app:1", err: `policy "warn"`},
		{prefix: "docker.io/", ref: "docker.io/library/busybox:1", err: `rule "default" with policy "off"`},
	}
	for _, c := range cases {
		err := checkTrustPrefix(tc, c.prefix, c.ref)
		if c.err == "" {
			must.NoError(t, err, must.Sprintf("%s %s", c.prefix, c.ref))
			continue
		}
		must.ErrorContains(t, err, c.err)
	}
}
