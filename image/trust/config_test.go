package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConfigErrors(t *testing.T) {
	good := newTestKey(t, "ecdsa").pubPath
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	writeFile(t, notPEM, []byte("ssh-ed25519 AAAA... not a pem key\n"))
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(priv)
	private := filepath.Join(dir, "cosign.key")
	writeFile(t, private, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	cert := filepath.Join(dir, "cert.pem")
	writeFile(t, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}))
	p384 := newTestKey(t, "ecdsa-p384").pubPath
	rsa1024 := newTestKey(t, "rsa-1024").pubPath
	missing := filepath.Join(dir, "missing.pub")

	rule := func(prefix, policy string, keys ...string) RawRule {
		return RawRule{Prefix: prefix, Policy: policy, PublicKeys: keys}
	}
	cases := []struct {
		name    string
		def     string
		rules   []RawRule
		wantErr string
	}{
		{"bad default", "strict", nil, `trust.default_policy: "strict": must be one of off, warn, enforce`},
		{"bad rule policy", "", []RawRule{rule("r.example.com/", "Enforce", good)}, `trust.rule[0].policy: "Enforce": must be one of`},
		{"empty prefix", "", []RawRule{rule("r.example.com/", "", good), rule("", "", good)}, "trust.rule[1].prefix: must not be empty"},
		{"prefix without host", "", []RawRule{rule("library/busybox", "", good)}, `trust.rule[0].prefix: "library/busybox": must start with a registry host`},
		{"prefix with digest", "", []RawRule{rule("r.example.com/x@sha256:", "", good)}, `trust.rule[0].prefix: "r.example.com/x@sha256:": must not contain`},
		{"uppercase host", "", []RawRule{rule("R.example.com/", "", good)}, `must be lowercase`},
		{"duplicate prefix", "", []RawRule{rule("r.example.com/", "", good), rule("r.example.com/", "warn", good)}, `trust.rule[1].prefix: "r.example.com/": already used by trust.rule[0]`},
		{"no keys", "", []RawRule{rule("r.example.com/", "warn")}, `trust.rule[0].public_keys: a rule with policy "warn" needs at least one public key file`},
		{"missing file", "", []RawRule{rule("r.example.com/", "", good, missing)}, `trust.rule[0].public_keys: "` + missing + `": failed to read the key file`},
		{"not pem", "", []RawRule{rule("r.example.com/", "", notPEM)}, `trust.rule[0].public_keys: "` + notPEM + `": no PEM block found`},
		{"private key", "", []RawRule{rule("r.example.com/", "", private)}, `give the public key (cosign.pub), never the private one`},
		{"certificate", "", []RawRule{rule("r.example.com/", "", cert)}, `unexpected PEM block "CERTIFICATE"`},
		{"p384", "", []RawRule{rule("r.example.com/", "", p384)}, `ECDSA key on curve P-384`},
		{"small rsa", "", []RawRule{rule("r.example.com/", "", rsa1024)}, `RSA key of 1024 bits`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig(tc.def, tc.rules)
			if err == nil {
				t.Fatalf("expected an error containing %q, got config %+v", tc.wantErr, cfg)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseConfigDefaultsAndKeyTypes(t *testing.T) {
	var keys []string
	for _, kind := range []string{"ecdsa", "ed25519", "rsa"} {
		keys = append(keys, newTestKey(t, kind).pubPath)
	}
	cfg, err := ParseConfig("", []RawRule{
		{Prefix: "r.example.com/", PublicKeys: keys},
		{Prefix: "r.example.com/public/", Policy: "off"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DefaultPolicy != PolicyOff {
		t.Errorf("default policy %q, expected off", cfg.DefaultPolicy)
	}
	r, ok := cfg.Match("r.example.com/app:1")
	if !ok || r.Policy != PolicyEnforce || len(r.keys) != 3 || r.PublicKeys[2] != keys[2] {
		t.Errorf("rule without a policy: got %+v (matched %v), expected enforce with 3 keys", r, ok)
	}
	if r, _ := cfg.Match("r.example.com/public/x"); r.Policy != PolicyOff {
		t.Errorf("off rule without keys: got %+v", r)
	}
}

func TestMatch(t *testing.T) {
	k := newTestKey(t, "ecdsa").pubPath
	cfg, err := ParseConfig("warn", []RawRule{
		{Prefix: "registry.example.com/", PublicKeys: []string{k}, Policy: "warn"},
		{Prefix: "registry.example.com/team/", PublicKeys: []string{k}, Policy: "enforce"},
		{Prefix: "registry.example.com/team/public/", Policy: "off"},
		{Prefix: "docker.io/library/", PublicKeys: []string{k}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ref    string
		rule   string
		policy Policy
	}{
		{"registry.example.com/team/app:1", "registry.example.com/team/", PolicyEnforce},
		{"registry.example.com/team/public/app@sha256:" + strings.Repeat("a", 64), "registry.example.com/team/public/", PolicyOff},
		{"registry.example.com/other/app", "registry.example.com/", PolicyWarn},
		{"busybox", "docker.io/library/", PolicyEnforce},              // normalized to docker.io/library/busybox:latest
		{"library/busybox:1.36", "docker.io/library/", PolicyEnforce}, // the same
		{"ghcr.io/x/y:1", DefaultRuleName, PolicyWarn},
		{"registry.example.com:5000/team/app", DefaultRuleName, PolicyWarn}, // another host
	}
	for _, tc := range cases {
		r, ok := cfg.Match(tc.ref)
		if r.Name() != tc.rule || r.Policy != tc.policy || ok != (tc.rule != DefaultRuleName) {
			t.Errorf("Match(%q) = %q %q %v, expected %q %q", tc.ref, r.Name(), r.Policy, ok, tc.rule, tc.policy)
		}
	}
	var nilCfg *Config
	if r, ok := nilCfg.Match("busybox"); ok || r.Policy != PolicyOff {
		t.Errorf("nil config: got %+v %v, expected off", r, ok)
	}
}
