package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Cosign runs the cosign CLI that `make deps` builds, offline: key pairs
// made here, key-based signing with no transparency log upload, no signing
// config and no TUF. HOME and TUF_ROOT point into Dir, which no run should
// leave a TUF cache in (CheckOffline).
type Cosign struct {
	Bin      string
	V2       bool   // a cosign v2 build: classic signatures, no signing config
	Dir      string // HOME and TUF_ROOT of the runs; key pairs
	Password string // COSIGN_PASSWORD of the key pairs
}

// NewCosign returns a Cosign with a temp dir of the test's own; the test is
// skipped (failed under CI=true) when cosign is missing.
func NewCosign(t testing.TB) *Cosign {
	t.Helper()
	return newCosign(t, "cosign", false)
}

// NewCosignV2 is NewCosign for the cosign v2 build (`cosign2`, see
// hack/deps.sh), which writes the classic signature layout.
func NewCosignV2(t testing.TB) *Cosign {
	t.Helper()
	return newCosign(t, "cosign2", true)
}

func newCosign(t testing.TB, name string, v2 bool) *Cosign {
	t.Helper()
	Require(t, false, name)
	bin, err := LookBin(name)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return &Cosign{Bin: bin, V2: v2, Dir: t.TempDir(), Password: "testbed-cosign"}
}

// KeyPair is a pair from `cosign generate-key-pair`: an encrypted ECDSA
// P-256 private key and its PEM public key.
type KeyPair struct {
	Private, Public string
}

// GenerateKeyPair writes name.key and name.pub into Dir.
func (c *Cosign) GenerateKeyPair(t testing.TB, name string) KeyPair {
	t.Helper()
	prefix := filepath.Join(c.Dir, name)
	if out, err := c.run(context.Background(), "generate-key-pair", "--output-key-prefix", prefix); err != nil {
		t.Fatalf("testbed: %v\n%s", err, out)
	}
	return KeyPair{Private: prefix + ".key", Public: prefix + ".pub"}
}

// ImportKeyPair turns a PEM RSA or EC private key into name.key and
// name.pub in Dir (`cosign import-key-pair`).
func (c *Cosign) ImportKeyPair(t testing.TB, name string, privatePEM []byte) KeyPair {
	t.Helper()
	in := filepath.Join(c.Dir, name+".pem")
	if err := os.WriteFile(in, privatePEM, 0o600); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	prefix := filepath.Join(c.Dir, name)
	if out, err := c.run(context.Background(), "import-key-pair", "--key", in, "--output-key-prefix", prefix); err != nil {
		t.Fatalf("testbed: %v\n%s", err, out)
	}
	return KeyPair{Private: prefix + ".key", Public: prefix + ".pub"}
}

// SignOptions choose the signature layout and how cosign reaches the
// registry.
type SignOptions struct {
	// Classic writes cosign's v2 layout (a simple-signing payload under the
	// "sha256-<hex>.sig" tag) instead of a sigstore bundle referring to the
	// image (an OCI referrer, or the "sha256-<hex>" tag fallback where the
	// registry has no referrers API).
	Classic bool
	// AllowHTTP lets cosign talk plain HTTP to the registry.
	AllowHTTP bool
	// CAFile is the registry's CA (--registry-cacert).
	CAFile string
	// Username and Password are the registry's basic auth credentials.
	Username, Password string
}

// SignOptionsFor reaches reg: plain HTTP, or its CA, and its account.
func SignOptionsFor(reg *Registry) SignOptions {
	return SignOptions{AllowHTTP: reg.CA == nil, CAFile: reg.CAFile, Username: reg.User, Password: reg.Password}
}

// SignArgs are the arguments of `cosign sign` for key and imageRef
// (host/repo@sha256:...).
func SignArgs(key, imageRef string, o SignOptions) []string {
	args := []string{"sign", "--key", key, "--yes",
		// offline: no TUF-provided signing config, no Rekor upload
		"--use-signing-config=false", "--tlog-upload=false"}
	if o.Classic {
		args = append(args, "--new-bundle-format=false")
	}
	if o.AllowHTTP {
		args = append(args, "--allow-http-registry")
	}
	if o.CAFile != "" {
		args = append(args, "--registry-cacert", o.CAFile)
	}
	if o.Username != "" {
		args = append(args, "--registry-username", o.Username, "--registry-password", o.Password)
	}
	return append(args, imageRef)
}

// Sign signs imageRef, which must name a digest, with the private key.
func (c *Cosign) Sign(ctx context.Context, key, imageRef string, o SignOptions) error {
	if !strings.Contains(imageRef, "@sha256:") {
		return fmt.Errorf("cosign sign %s: sign a digest, not a tag", imageRef)
	}
	args := SignArgs(key, imageRef, o)
	if c.V2 {
		args = v2Args(args)
	}
	out, err := c.run(ctx, args...)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// v2Args drops the flags cosign v2 does not know (it has no signing
// config and writes the classic layout by default).
func v2Args(args []string) []string {
	var out []string
	for _, a := range args {
		if a == "--use-signing-config=false" || a == "--new-bundle-format=false" {
			continue
		}
		out = append(out, a)
	}
	return out
}

// CheckOffline fails the test when a run left a TUF cache: cosign tried to
// fetch Sigstore's trust root.
func (c *Cosign) CheckOffline(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(c.Dir, "tuf")); err == nil {
		t.Errorf("testbed: cosign created a TUF cache in %s: it tried to reach Sigstore's TUF repository", c.Dir)
	}
}

func (c *Cosign) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Dir = c.Dir
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("cosign %s: %w", args[0], err)
	}
	return out, nil
}

// env is the environment without proxies and without any COSIGN_*,
// SIGSTORE_* or TUF_* setting of the caller (COSIGN_EXPERIMENTAL included).
func (c *Cosign) env() []string {
	var env []string
	for _, kv := range cleanEnv() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || strings.HasPrefix(k, "COSIGN_") ||
			strings.HasPrefix(k, "SIGSTORE_") || strings.HasPrefix(k, "TUF_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+c.Dir, "TUF_ROOT="+filepath.Join(c.Dir, "tuf"), "COSIGN_PASSWORD="+c.Password)
}
