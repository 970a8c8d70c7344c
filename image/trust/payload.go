package trust

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Media types and values of the two layouts cosign writes.
const (
	// SimpleSigningMediaType is a classic layer: a simple-signing payload.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds the base64 signature of a classic layer.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// BundleArtifactType is the artifact type of a cosign v3 signature.
	BundleArtifactType = "application/vnd.dev.sigstore.bundle.v0.3+json"

	simpleSigningType = "cosign container image signature"
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

// simpleSigning is the payload of a classic cosign signature.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
}

// verifySimpleSigning checks a classic signature: sigB64 (the layer's
// annotation) over payload by one of keys, then that the signed payload
// names dgst. It returns the key that signed.
func verifySimpleSigning(payload []byte, sigB64 string, dgst digest.Digest, keys []*publicKey) (*publicKey, error) {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return nil, fmt.Errorf("the signature annotation is not base64: %w", err)
	}
	key := firstVerifying(keys, payload, sig)
	if key == nil {
		return nil, errUntrusted
	}
	var p simpleSigning
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("signed payload is not simple-signing JSON: %w", err)
	}
	if p.Critical.Type != simpleSigningType {
		return nil, fmt.Errorf("signed payload has type %q, expected %q", p.Critical.Type, simpleSigningType)
	}
	if got := p.Critical.Image.DockerManifestDigest; got != dgst.String() {
		return nil, fmt.Errorf("%w: the payload names %s", errOtherDigest, got)
	}
	return key, nil
}

// bundle is the part of a Sigstore bundle (protobuf JSON) verified here.
type bundle struct {
	MediaType        string `json:"mediaType"`
	MessageSignature *struct {
		MessageDigest struct {
			Algorithm string `json:"algorithm"`
			Digest    []byte `json:"digest"`
		} `json:"messageDigest"`
		Signature []byte `json:"signature"`
	} `json:"messageSignature"`
	DSSEEnvelope *struct {
		Payload     []byte `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig []byte `json:"sig"`
		} `json:"signatures"`
	} `json:"dsseEnvelope"`
}

// statement is an in-toto statement.
type statement struct {
	Type    string `json:"_type"`
	Subject []struct {
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	PredicateType string `json:"predicateType"`
}

// verifyBundle checks a Sigstore bundle: a DSSE envelope holding an in-toto
// statement of `cosign sign` whose subject is dgst, or a message signature
// over dgst itself, signed by one of keys. It returns the key that signed.
func verifyBundle(data []byte, dgst digest.Digest, keys []*publicKey) (*publicKey, error) {
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("not a sigstore bundle: %w", err)
	}
	if !isBundleMediaType(b.MediaType) {
		return nil, fmt.Errorf("not a sigstore bundle: media type %q", b.MediaType)
	}
	switch {
	case b.DSSEEnvelope != nil:
		env := b.DSSEEnvelope
		if env.PayloadType != inTotoPayloadType {
			return nil, fmt.Errorf("bundle envelope has payload type %q, expected %q", env.PayloadType, inTotoPayloadType)
		}
		pae := preAuthEncoding(env.PayloadType, env.Payload)
		var key *publicKey
		for _, s := range env.Signatures {
			if key = firstVerifying(keys, pae, s.Sig); key != nil {
				break
			}
		}
		if key == nil {
			return nil, errUntrusted
		}
		return key, checkStatement(env.Payload, dgst)
	case b.MessageSignature != nil:
		ms := b.MessageSignature
		if ms.MessageDigest.Algorithm != "SHA2_256" || dgst.Algorithm() != digest.SHA256 {
			return nil, fmt.Errorf("bundle message digest uses %s; only SHA2_256 over a sha256 image digest is supported", ms.MessageDigest.Algorithm)
		}
		var key *publicKey
		for _, k := range keys {
			if k.verifyDigest(ms.MessageDigest.Digest, ms.Signature) == nil {
				key = k
				break
			}
		}
		if key == nil {
			return nil, errUntrusted
		}
		if want, _ := hex.DecodeString(dgst.Encoded()); !bytes.Equal(ms.MessageDigest.Digest, want) {
			return nil, fmt.Errorf("%w: the message digest is sha256:%x", errOtherDigest, ms.MessageDigest.Digest)
		}
		return key, nil
	}
	return nil, fmt.Errorf("bundle holds neither a dsseEnvelope nor a messageSignature")
}

// checkStatement checks a signed in-toto statement: `cosign sign`'s
// predicate and dgst among the subjects.
func checkStatement(payload []byte, dgst digest.Digest) error {
	var st statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return fmt.Errorf("signed payload is not an in-toto statement: %w", err)
	}
	if !strings.HasPrefix(st.Type, "https://in-toto.io/Statement/") {
		return fmt.Errorf("signed payload has type %q, expected an in-toto statement", st.Type)
	}
	if st.PredicateType != cosignSignPredicate {
		return fmt.Errorf("signed statement has predicate %q, expected %q (an attestation is no signature)", st.PredicateType, cosignSignPredicate)
	}
	var named []string
	for _, s := range st.Subject {
		for alg, hex := range s.Digest {
			if alg == dgst.Algorithm().String() && hex == dgst.Encoded() {
				return nil
			}
			named = append(named, alg+":"+hex)
		}
	}
	if len(named) == 0 {
		return fmt.Errorf("signed statement names no subject digest")
	}
	return fmt.Errorf("%w: the statement names %s", errOtherDigest, strings.Join(named, ", "))
}

// preAuthEncoding is DSSE's PAE, what a DSSE signature signs.
func preAuthEncoding(payloadType string, payload []byte) []byte {
	head := fmt.Sprintf("DSSEv1 %d %s %d ", len(payloadType), payloadType, len(payload))
	return append([]byte(head), payload...)
}

// firstVerifying is the first of keys under which sig verifies over message.
func firstVerifying(keys []*publicKey, message, sig []byte) *publicKey {
	for _, k := range keys {
		if k.verify(message, sig) == nil {
			return k
		}
	}
	return nil
}
