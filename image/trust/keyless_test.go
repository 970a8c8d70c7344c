package trust

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

const (
	ciIssuer   = "https://token.actions.githubusercontent.com"
	ciWorkflow = "https://github.com/example/payments/.github/workflows/release.yml@refs/heads/main"
)

// keylessSetup is a fake registry holding "team/app:1" and a verifier whose
// enforce rule for the registry trusts vs's certificates for ids.
func keylessSetup(t *testing.T, vs *testbed.VirtualSigstore, ids ...RawIdentity) (*fakeRegistry, *Verifier, string, digest.Digest) {
	t.Helper()
	reg := newFakeRegistry(t, true)
	cfg, err := ParseConfig("off", []RawRule{{Prefix: reg.Host + "/team/", Identities: ids, TrustedRoot: vs.RootPath}})
	if err != nil {
		t.Fatal(err)
	}
	return reg, NewVerifier(cfg, nil, nil), reg.Host + "/" + repo + ":1", reg.putImage(repo, "1", "image one")
}

func TestKeylessAccepted(t *testing.T) {
	vs := testbed.NewVirtualSigstore(t)
	for name, id := range map[string]RawIdentity{
		"exact":  {Issuer: ciIssuer, Subject: ciWorkflow},
		"regexp": {Issuer: ciIssuer, SubjectRegexp: `^https://github\.com/example/payments/\.github/workflows/release\.yml@refs/(heads|tags)/`},
	} {
		t.Run(name, func(t *testing.T) {
			reg, v, ref, dgst := keylessSetup(t, vs, RawIdentity{Issuer: ciIssuer, Subject: "https://github.com/example/other/.github/workflows/x.yml@refs/heads/main"}, id)
			reg.putBundle(repo, dgst, vs.SignImage(t, ciIssuer, ciWorkflow, dgst, testbed.BundleOptions{}))
			res, err := v.Verify(context.Background(), ref, dgst)
			if err != nil || !res.Verified || res.Layout != LayoutBundleReferrer {
				t.Fatalf("got %+v, %v; expected a verified referrer bundle", res, err)
			}
			if want := ciWorkflow + " (issuer " + ciIssuer + ")"; res.Signer() != want || res.Identity != want {
				t.Fatalf("signer %q, identity %q; expected the certificate's %q", res.Signer(), res.Identity, want)
			}
		})
	}
}

func TestKeylessRefused(t *testing.T) {
	vs := testbed.NewVirtualSigstore(t)
	stranger := testbed.NewVirtualSigstore(t) // a Sigstore the rule does not trust
	for _, tc := range []struct {
		name   string
		bundle func(t *testing.T, dgst digest.Digest) []byte
		reason string
	}{
		{"other identity", func(t *testing.T, d digest.Digest) []byte {
			return vs.SignImage(t, ciIssuer, "https://github.com/example/payments/.github/workflows/test.yml@refs/heads/main", d, testbed.BundleOptions{})
		}, "not signed by any trusted identity"},
		{"other issuer", func(t *testing.T, d digest.Digest) []byte {
			return vs.SignImage(t, "https://accounts.example.com", ciWorkflow, d, testbed.BundleOptions{})
		}, "not signed by any trusted identity"},
		{"other digest", func(t *testing.T, _ digest.Digest) []byte {
			return vs.SignImage(t, ciIssuer, ciWorkflow, digest.FromString("another image"), testbed.BundleOptions{})
		}, "signed for another digest"},
		{"untrusted sigstore", func(t *testing.T, d digest.Digest) []byte {
			return stranger.SignImage(t, ciIssuer, ciWorkflow, d, testbed.BundleOptions{})
		}, "does not verify against trusted root"},
		{"expired certificate", func(t *testing.T, d digest.Digest) []byte {
			// logged 30 minutes on: past the leaf's 10 minutes, inside the
			// virtual log's validity (an hour either side of its creation)
			return vs.SignImage(t, ciIssuer, ciWorkflow, d, testbed.BundleOptions{At: time.Now().Add(30 * time.Minute), NoTimestamps: true})
		}, "outside certificate validity"},
		{"missing log entry", func(t *testing.T, d digest.Digest) []byte {
			return vs.SignImage(t, ciIssuer, ciWorkflow, d, testbed.BundleOptions{NoLogEntry: true})
		}, "not enough verified log entries"},
		{"tampered bundle", func(t *testing.T, d digest.Digest) []byte {
			b := vs.SignImage(t, ciIssuer, ciWorkflow, d, testbed.BundleOptions{})
			return []byte(strings.Replace(string(b), `"sig":"`, `"sig":"AAAA`, 1))
		}, "signature does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, v, ref, dgst := keylessSetup(t, vs, RawIdentity{Issuer: ciIssuer, Subject: ciWorkflow})
			reg.putBundle(repo, dgst, tc.bundle(t, dgst))
			_, err := v.Verify(context.Background(), ref, dgst)
			t.Log(err)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v; expected a verification error", err)
			}
			for _, want := range []string{reg.Host + "/" + repo, dgst.String(), reg.Host + "/team/", tc.reason} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
}

func TestParseConfigKeylessErrors(t *testing.T) {
	vs := testbed.NewVirtualSigstore(t)
	notRoot := filepath.Join(t.TempDir(), "trusted_root.json")
	writeFile(t, notRoot, []byte(`{"mediaType":"application/json"}`))
	ci := RawIdentity{Issuer: ciIssuer, Subject: ciWorkflow}
	rule := func(root string, ids ...RawIdentity) []RawRule {
		return []RawRule{{Prefix: "r.example.com/", Identities: ids, TrustedRoot: root}}
	}
	for _, tc := range []struct {
		name    string
		rules   []RawRule
		wantErr string
	}{
		{"identity without root", rule("", ci), `trust.rule[0].trusted_root: a rule with identities needs a trusted root file`},
		{"root without identity", rule(vs.RootPath), `trust.rule[0].identity: a rule with a trusted_root needs at least one identity block`},
		{"no issuer", rule(vs.RootPath, RawIdentity{Subject: ciWorkflow}), `trust.rule[0].identity[0].issuer: give exactly one of issuer and issuer_regexp`},
		{"two issuers", rule(vs.RootPath, RawIdentity{Issuer: ciIssuer, IssuerRegexp: ".*", Subject: ciWorkflow}), `trust.rule[0].identity[0].issuer: give exactly one`},
		{"no subject", rule(vs.RootPath, RawIdentity{Issuer: ciIssuer}), `trust.rule[0].identity[0].subject: give exactly one of subject and subject_regexp`},
		{"bad regexp", rule(vs.RootPath, ci, RawIdentity{Issuer: ciIssuer, SubjectRegexp: "release(.yml"}), `trust.rule[0].identity[1].subject_regexp: "release(.yml": not a regular expression`},
		{"missing root", rule(filepath.Join(t.TempDir(), "none.json"), ci), `trust.rule[0].trusted_root: "`},
		{"not a root", rule(notRoot, ci), `failed to parse the trusted root`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig("off", tc.rules)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %+v, %v; expected an error containing %q", cfg, err, tc.wantErr)
			}
		})
	}
}

// TestKeylessMemoryFollowsRoot checks that a verification remembered under
// one trusted root does not hold under another.
func TestKeylessMemoryFollowsRoot(t *testing.T) {
	vs, other := testbed.NewVirtualSigstore(t), testbed.NewVirtualSigstore(t)
	ci := RawIdentity{Issuer: ciIssuer, Subject: ciWorkflow}
	reg, v, ref, dgst := keylessSetup(t, vs, ci)
	reg.putBundle(repo, dgst, vs.SignImage(t, ciIssuer, ciWorkflow, dgst, testbed.BundleOptions{}))
	mem := NewMemory()
	if res, err := v.WithMemory(mem).Verify(context.Background(), ref, dgst); err != nil || !res.Verified {
		t.Fatalf("first verification: %+v, %v", res, err)
	}
	cfg, err := ParseConfig("off", []RawRule{{Prefix: reg.Host + "/team/", Identities: []RawIdentity{ci}, TrustedRoot: other.RootPath}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(cfg, nil, nil).WithMemory(mem).Verify(context.Background(), ref, dgst); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("under another root: %v; expected a verification that fails", err)
	}
}
