package trust

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Media types and values of the two layouts cosign writes.
const (
	// SimpleSigningMediaType is a classic layer: a simple-signing payload.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds the base64 signature of a classic layer.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// BundleArtifactType is the artifact type of a cosign v3 signature.
	BundleArtifactType = "application/vnd.dev.sigstore.bundle.v0.3+json"

	inTotoPayloadType = "application/vnd.in-toto+json"
	// cosignSignPredicate is the predicate of the statement `cosign sign`
	// puts in a bundle; attestations carry others and are no signatures.
	cosignSignPredicate = "https://sigstore.dev/cosign/sign/v1"
)

var (
	// errUntrusted: the signature verifies with none of the rule's keys.
	errUntrusted = errors.New("not signed by any trusted key")
	// errOtherDigest: a trusted key signed, but for another image.
	errOtherDigest = errors.New("signed for another digest")
)

// isBundleMediaType accepts the bundle media types of versions 0.1 to 0.3.
func isBundleMediaType(mt string) bool {
	return mt == BundleArtifactType || strings.HasPrefix(mt, "application/vnd.dev.sigstore.bundle+json")
}

// verifySimpleSigning checks a classic signature: sigB64 (the layer's
// annotation) over payload by one of keys, then that the signed payload
// names dgst. It returns the key that signed.
func verifySimpleSigning(signed []byte, sigB64 string, dgst digest.Digest, keys []*publicKey) (*publicKey, error) {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return nil, fmt.Errorf("the signature annotation is not base64: %w", err)
	}
	var key *publicKey
	for _, k := range keys {
		if k.verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(signed)) == nil {
			key = k
			break
		}
	}
	if key == nil {
		return nil, errUntrusted
	}
	var p payload.Cosign
	if err := json.Unmarshal(signed, &p); err != nil {
		return nil, fmt.Errorf("signed payload is not a cosign simple-signing payload: %w", err)
	}
	if got := p.Image.DigestStr(); got != dgst.String() {
		return nil, fmt.Errorf("%w: the payload names %s", errOtherDigest, got)
	}
	return key, nil
}

// verifyBundle checks a Sigstore bundle with sigstore-go under one of keys:
// a DSSE envelope holding an in-toto statement of `cosign sign` whose
// subject is dgst, or a message signature over dgst itself. No timestamp
// or log entry is needed: the keys are trusted as they are. It returns the
// key that signed.
func verifyBundle(data []byte, dgst digest.Digest, keys []*publicKey) (*publicKey, error) {
	var b bundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("not a sigstore bundle: %w", err)
	}
	if dgst.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("image digest %s: only sha256 image digests are supported", dgst)
	}
	want, err := hex.DecodeString(dgst.Encoded())
	if err != nil {
		return nil, fmt.Errorf("image digest %s: %w", dgst, err)
	}
	policy := verify.NewPolicy(verify.WithArtifactDigest("sha256", want), verify.WithKey())
	var other error // a trusted key signed, for something else
	for _, k := range keys {
		v, err := verify.NewVerifier(keyMaterial(k), verify.WithNoObserverTimestamps())
		if err != nil {
			return nil, fmt.Errorf("failed to set up the bundle verifier: %w", err)
		}
		res, err := v.Verify(&b, policy)
		if err == nil {
			return k, checkPredicate(res)
		}
		if signedOther := signedFor(v, &b, verify.WithKey()); signedOther != nil {
			other = signedOther
		}
	}
	if other != nil {
		return nil, other
	}
	return nil, errUntrusted
}

// keyMaterial is k as sigstore-go's trusted material: the one key, for
// whatever hint a bundle gives, valid at any time.
func keyMaterial(k *publicKey) root.TrustedMaterial {
	key := root.NewExpiringKey(k.verifier, time.Time{}, time.Time{})
	return root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
}

// signedFor is errOtherDigest, naming what the bundle signs, when b
// verifies under v and signer (the key or identity policy) for the artifact
// it names itself; else nil.
func signedFor(v *verify.Verifier, b *bundle.Bundle, signer verify.PolicyOption) error {
	content, err := b.SignatureContent()
	if err != nil {
		return nil
	}
	if ms := content.MessageSignatureContent(); ms != nil {
		policy := verify.NewPolicy(verify.WithArtifactDigest("sha256", ms.Digest()), signer)
		if _, err := v.Verify(b, policy); err != nil {
			return nil
		}
		return fmt.Errorf("%w: the message digest is sha256:%x", errOtherDigest, ms.Digest())
	}
	res, err := v.Verify(b, verify.NewPolicy(verify.WithoutArtifactUnsafe(), signer))
	if err != nil || res.Statement == nil {
		return nil
	}
	var named []string
	for _, s := range res.Statement.GetSubject() {
		for alg, hex := range s.GetDigest() {
			named = append(named, alg+":"+hex)
		}
	}
	if len(named) == 0 {
		return fmt.Errorf("%w: the signed statement names no subject digest", errOtherDigest)
	}
	return fmt.Errorf("%w: the statement names %s", errOtherDigest, strings.Join(named, ", "))
}

// checkPredicate refuses a verified statement that is not `cosign sign`'s.
func checkPredicate(res *verify.VerificationResult) error {
	if res.Statement == nil {
		return nil // a message signature
	}
	if p := res.Statement.GetPredicateType(); p != cosignSignPredicate {
		return fmt.Errorf("signed statement has predicate %q, expected %q (an attestation is no signature)", p, cosignSignPredicate)
	}
	return nil
}
