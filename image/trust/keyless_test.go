package trust

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	ciIssuer   = "https://token.actions.githubusercontent.com"
	ciWorkflow = "https://github.com/example/payments/.github/workflows/release.yml@refs/heads/main"
)

// virtualSigstore is a Sigstore instance made in the test (certificate
// authority, transparency log, timestamp authority) and its trusted root,
// written as trusted_root.json.
type virtualSigstore struct {
	*ca.VirtualSigstore
	rootPath string
}

func newVirtualSigstore(t *testing.T) *virtualSigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	// the virtual log's ID is its hex text; a trusted root holds its bytes
	logs := map[string]*root.TransparencyLog{}
	for id, l := range vs.RekorLogs() {
		raw, err := hex.DecodeString(id)
		if err != nil {
			t.Fatal(err)
		}
		l.ID = raw
		logs[id] = l
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), vs.CTLogs(), vs.TimestampingAuthorities(), logs)
	if err != nil {
		t.Fatal(err)
	}
	data, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trusted_root.json")
	writeFile(t, path, data)
	return &virtualSigstore{VirtualSigstore: vs, rootPath: path}
}

// bundleOpts shape a keyless bundle.
type bundleOpts struct {
	at           time.Time // the log's integrated time; zero: in the certificate's validity
	noLogEntry   bool
	noTimestamps bool
}

// sign is a v0.3 bundle of `cosign sign`'s statement for dgst, signed
// keyless by identity (issuer, subject), logged in vs's log.
func (vs *virtualSigstore) sign(t *testing.T, issuer, subject string, dgst digest.Digest, o bundleOpts) []byte {
	t.Helper()
	if o.at.IsZero() {
		o.at = time.Now().Add(5 * time.Minute)
	}
	e, err := vs.AttestAtTime(subject, issuer, statementPayload(cosignSignPredicate, dgst), o.at, true)
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := e.VerificationContent()
	sc, _ := e.SignatureContent()
	env := sc.EnvelopeContent().RawEnvelope()
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	vm := &protobundle.VerificationMaterial{
		Content:                   &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
		TimestampVerificationData: &protobundle.TimestampVerificationData{},
	}
	if !o.noLogEntry {
		entries, _ := e.TlogEntries()
		for _, le := range entries {
			vm.TlogEntries = append(vm.TlogEntries, vs.logEntry(t, le))
		}
	}
	if !o.noTimestamps {
		ts, _ := e.Timestamps()
		for _, s := range ts {
			vm.TimestampVerificationData.Rfc3161Timestamps = append(vm.TimestampVerificationData.Rfc3161Timestamps, &protocommon.RFC3161SignedTimestamp{SignedTimestamp: s})
		}
	}
	b, err := protojson.Marshal(&protobundle.Bundle{
		MediaType:            BundleArtifactType,
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: payload, PayloadType: env.PayloadType, Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logEntry is le as a bundle carries it: its kind and the log's signed
// entry timestamp, which the virtual log keeps apart, filled in.
func (vs *virtualSigstore) logEntry(t *testing.T, le *tlog.Entry) *protorekor.TransparencyLogEntry {
	t.Helper()
	tle := proto.Clone(le.TransparencyLogEntry()).(*protorekor.TransparencyLogEntry)
	tle.KindVersion = &protorekor.KindVersion{Kind: "intoto", Version: "0.0.2"}
	logID, err := vs.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	set, err := vs.RekorSignPayload(tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
		IntegratedTime: tle.IntegratedTime, LogIndex: tle.LogIndex, LogID: logID})
	if err != nil {
		t.Fatal(err)
	}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	return tle
}

// keylessSetup is a fake registry holding "team/app:1" and a verifier whose
// enforce rule for the registry trusts vs's certificates for ids.
func keylessSetup(t *testing.T, vs *virtualSigstore, ids ...RawIdentity) (*fakeRegistry, *Verifier, string, digest.Digest) {
	t.Helper()
	reg := newFakeRegistry(t, true)
	cfg, err := ParseConfig("off", []RawRule{{Prefix: reg.Host + "/team/", Identities: ids, TrustedRoot: vs.rootPath}})
	if err != nil {
		t.Fatal(err)
	}
	return reg, NewVerifier(cfg, nil, nil), reg.Host + "/" + repo + ":1", reg.putImage(repo, "1", "image one")
}

func TestKeylessAccepted(t *testing.T) {
	vs := newVirtualSigstore(t)
	for name, id := range map[string]RawIdentity{
		"exact":  {Issuer: ciIssuer, Subject: ciWorkflow},
		"regexp": {Issuer: ciIssuer, SubjectRegexp: `^https://github\.com/example/payments/\.github/workflows/release\.yml@refs/(heads|tags)/`},
	} {
		t.Run(name, func(t *testing.T) {
			reg, v, ref, dgst := keylessSetup(t, vs, RawIdentity{Issuer: ciIssuer, Subject: "https://github.com/example/other/.github/workflows/x.yml@refs/heads/main"}, id)
			reg.putBundle(repo, dgst, vs.sign(t, ciIssuer, ciWorkflow, dgst, bundleOpts{}))
			res, err := v.Verify(context.Background(), ref, dgst)
			if err != nil || !res.Verified || res.Layout != LayoutBundleReferrer {
				t.Fatalf("got %+v, %v; expected a verified referrer bundle", res, err)
			}
			if !strings.Contains(res.Signer(), ciWorkflow) && !strings.Contains(res.Signer(), "release") {
				t.Fatalf("signer %q does not name the identity", res.Signer())
			}
		})
	}
}

func TestKeylessRefused(t *testing.T) {
	vs := newVirtualSigstore(t)
	stranger := newVirtualSigstore(t) // a Sigstore the rule does not trust
	for _, tc := range []struct {
		name   string
		bundle func(t *testing.T, dgst digest.Digest) []byte
		reason string
	}{
		{"other identity", func(t *testing.T, d digest.Digest) []byte {
			return vs.sign(t, ciIssuer, "https://github.com/example/payments/.github/workflows/test.yml@refs/heads/main", d, bundleOpts{})
		}, "not signed by any trusted identity"},
		{"other issuer", func(t *testing.T, d digest.Digest) []byte {
			return vs.sign(t, "https://accounts.example.com", ciWorkflow, d, bundleOpts{})
		}, "not signed by any trusted identity"},
		{"other digest", func(t *testing.T, _ digest.Digest) []byte {
			return vs.sign(t, ciIssuer, ciWorkflow, digest.FromString("another image"), bundleOpts{})
		}, "signed for another digest"},
		{"untrusted sigstore", func(t *testing.T, d digest.Digest) []byte {
			return stranger.sign(t, ciIssuer, ciWorkflow, d, bundleOpts{})
		}, "does not verify against trusted root"},
		{"expired certificate", func(t *testing.T, d digest.Digest) []byte {
			return vs.sign(t, ciIssuer, ciWorkflow, d, bundleOpts{at: time.Now().Add(time.Hour), noTimestamps: true})
		}, "outside certificate validity"},
		{"missing log entry", func(t *testing.T, d digest.Digest) []byte {
			return vs.sign(t, ciIssuer, ciWorkflow, d, bundleOpts{noLogEntry: true})
		}, "not enough verified log entries"},
		{"tampered bundle", func(t *testing.T, d digest.Digest) []byte {
			b := vs.sign(t, ciIssuer, ciWorkflow, d, bundleOpts{})
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
	vs := newVirtualSigstore(t)
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
		{"root without identity", rule(vs.rootPath), `trust.rule[0].identity: a rule with a trusted_root needs at least one identity block`},
		{"no issuer", rule(vs.rootPath, RawIdentity{Subject: ciWorkflow}), `trust.rule[0].identity[0].issuer: give exactly one of issuer and issuer_regexp`},
		{"two issuers", rule(vs.rootPath, RawIdentity{Issuer: ciIssuer, IssuerRegexp: ".*", Subject: ciWorkflow}), `trust.rule[0].identity[0].issuer: give exactly one`},
		{"no subject", rule(vs.rootPath, RawIdentity{Issuer: ciIssuer}), `trust.rule[0].identity[0].subject: give exactly one of subject and subject_regexp`},
		{"bad regexp", rule(vs.rootPath, ci, RawIdentity{Issuer: ciIssuer, SubjectRegexp: "release(.yml"}), `trust.rule[0].identity[1].subject_regexp: "release(.yml": not a regular expression`},
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
	vs, other := newVirtualSigstore(t), newVirtualSigstore(t)
	ci := RawIdentity{Issuer: ciIssuer, Subject: ciWorkflow}
	reg, v, ref, dgst := keylessSetup(t, vs, ci)
	reg.putBundle(repo, dgst, vs.sign(t, ciIssuer, ciWorkflow, dgst, bundleOpts{}))
	mem := NewMemory()
	if res, err := v.WithMemory(mem).Verify(context.Background(), ref, dgst); err != nil || !res.Verified {
		t.Fatalf("first verification: %+v, %v", res, err)
	}
	cfg, err := ParseConfig("off", []RawRule{{Prefix: reg.Host + "/team/", Identities: []RawIdentity{ci}, TrustedRoot: other.rootPath}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(cfg, nil, nil).WithMemory(mem).Verify(context.Background(), ref, dgst); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("under another root: %v; expected a verification that fails", err)
	}
}
