package trust

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

// maxRootFile bounds what is read of a trusted root file.
const maxRootFile = 4 << 20

// errNoIdentity: the bundle is signed by a certificate of the trusted root,
// but for none of the rule's identities.
var errNoIdentity = errors.New("not signed by any trusted identity")

// RawIdentity is one trust.rule.identity block: who must have signed, as
// the Fulcio certificate of a keyless signature says. Each of issuer and
// subject is given exactly, or as a regular expression (Go syntax,
// matched anywhere unless anchored).
type RawIdentity struct {
	Issuer        string
	IssuerRegexp  string
	Subject       string
	SubjectRegexp string
}

// Identity is a validated RawIdentity.
type Identity struct {
	RawIdentity
	match verify.CertificateIdentity
}

// parseIdentity checks that issuer and subject are each given once, exactly
// or as a regular expression that compiles.
func parseIdentity(raw RawIdentity) (Identity, error) {
	if (raw.Issuer == "") == (raw.IssuerRegexp == "") {
		return Identity{}, fmt.Errorf("issuer: give exactly one of issuer and issuer_regexp, e.g. issuer = \"https://token.actions.githubusercontent.com\"")
	}
	if (raw.Subject == "") == (raw.SubjectRegexp == "") {
		return Identity{}, fmt.Errorf("subject: give exactly one of subject and subject_regexp, e.g. the workflow URL of a GitHub Actions release job")
	}
	for field, re := range map[string]string{"issuer_regexp": raw.IssuerRegexp, "subject_regexp": raw.SubjectRegexp} {
		if _, err := regexp.Compile(re); err != nil {
			return Identity{}, fmt.Errorf("%s: %q: not a regular expression: %w", field, re, err)
		}
	}
	m, err := verify.NewShortCertificateIdentity(raw.Issuer, raw.IssuerRegexp, raw.Subject, raw.SubjectRegexp)
	if err != nil {
		return Identity{}, fmt.Errorf("issuer: %w", err)
	}
	return Identity{RawIdentity: raw, match: m}, nil
}

// trustedRoot is a loaded trusted_root.json and the SHA-256 of its bytes.
type trustedRoot struct {
	path        string
	root        *root.TrustedRoot
	fingerprint string
}

// loadTrustedRoot reads a Sigstore trusted root (trusted_root.json, as
// `cosign trusted-root create` writes it or the public-good instance
// distributes it through TUF).
func loadTrustedRoot(path string) (*trustedRoot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read the trusted root: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRootFile+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read the trusted root: %w", err)
	}
	if len(data) > maxRootFile {
		return nil, fmt.Errorf("the trusted root is larger than %d bytes", maxRootFile)
	}
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the trusted root (expected a trusted_root.json of media type %q): %w", root.TrustedRootMediaType01, err)
	}
	if len(tr.FulcioCertificateAuthorities()) == 0 {
		return nil, fmt.Errorf("the trusted root names no certificate authority; keyless signatures need one")
	}
	if len(tr.RekorLogs()) == 0 {
		return nil, fmt.Errorf("the trusted root names no transparency log; keyless signatures need one")
	}
	sum := sha256.Sum256(data)
	return &trustedRoot{path: path, root: tr, fingerprint: hex.EncodeToString(sum[:])}, nil
}

// verifyKeyless checks a keyless Sigstore bundle against tr: the signing
// certificate chains to one of its certificate authorities, the bundle's
// transparency log entry is included in one of its logs, and the
// certificate was valid when the log (and any timestamp authority of tr)
// saw the signature; all from what the bundle carries, offline. Then the
// certificate must name one of ids and the signature dgst. It returns who
// the certificate says signed: subject and issuer.
func verifyKeyless(data []byte, dgst digest.Digest, tr *trustedRoot, ids []Identity) (string, error) {
	var b bundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		return "", fmt.Errorf("not a sigstore bundle: %w", err)
	}
	if dgst.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("image digest %s: only sha256 image digests are supported", dgst)
	}
	want, err := hex.DecodeString(dgst.Encoded())
	if err != nil {
		return "", fmt.Errorf("image digest %s: %w", dgst, err)
	}
	opts := []verify.VerifierOption{verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1)}
	v, err := verify.NewVerifier(tr.root, opts...)
	if err != nil {
		return "", fmt.Errorf("failed to set up the bundle verifier: %w", err)
	}
	// the signature, the log entry and the certificate chain first, for
	// any identity: a failure here is the bundle's own
	if _, err := v.Verify(&b, verify.NewPolicy(verify.WithoutArtifactUnsafe(), verify.WithoutIdentitiesUnsafe())); err != nil {
		return "", fmt.Errorf("keyless signature does not verify against trusted root %s: %w", tr.path, err)
	}
	var other error
	for i := range ids {
		res, err := v.Verify(&b, verify.NewPolicy(verify.WithArtifactDigest("sha256", want), verify.WithCertificateIdentity(ids[i].match)))
		if err == nil {
			return certificateIdentity(&b), checkPredicate(res)
		}
		if _, idErr := v.Verify(&b, verify.NewPolicy(verify.WithoutArtifactUnsafe(), verify.WithCertificateIdentity(ids[i].match))); idErr == nil {
			other = signedFor(v, &b, verify.WithCertificateIdentity(ids[i].match))
		}
	}
	if other != nil {
		return "", other
	}
	return "", fmt.Errorf("%w: the certificate names %s", errNoIdentity, certificateIdentity(&b))
}

// certificateIdentity is who the bundle's certificate says signed.
func certificateIdentity(b *bundle.Bundle) string {
	vc, err := b.VerificationContent()
	if err != nil || vc.Certificate() == nil {
		return "no identity"
	}
	sum, err := certificate.SummarizeCertificate(vc.Certificate())
	if err != nil {
		return "no identity"
	}
	return fmt.Sprintf("%s (issuer %s)", sum.SubjectAlternativeName, sum.Extensions.Issuer)
}

// verifyBundle checks one bundle with the keys, then keyless with the
// identities: a bundle with a certificate is keyless, one without is keyed.
func (t trusted) verifyBundle(data []byte, dgst digest.Digest) (signedBy, error) {
	var errs []error
	if len(t.keys) > 0 {
		key, err := verifyBundle(data, dgst, t.keys)
		if err == nil {
			return signedBy{key: key}, nil
		}
		errs = append(errs, err)
	}
	if len(t.ids) > 0 && t.root != nil {
		id, err := verifyKeyless(data, dgst, t.root, t.ids)
		if err == nil {
			return signedBy{identity: id}, nil
		}
		errs = append(errs, err)
	}
	return signedBy{}, errors.Join(errs...)
}
