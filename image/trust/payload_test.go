package trust

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// The testdata files were written by cosign v3.1.3 for an image with digest
// fixtureDigest, signed with the key of testdata/cosign.pub: a sigstore
// bundle (the layer of the referrer manifest) and a classic simple-signing
// payload with its signature annotation.
const fixtureDigest = digest.Digest("sha256:162274d05167317941af5d58821dea9aeccccf7e444cd619c59d5c924eccbc6c")

func fixtureKey(t *testing.T) *publicKey {
	t.Helper()
	k, err := loadPublicKey("testdata/cosign.pub")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCosignV3BundleFixture(t *testing.T) {
	data, err := os.ReadFile("testdata/cosign-v3-bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	key := fixtureKey(t)
	if got, err := verifyBundle(data, fixtureDigest, []*publicKey{key}); err != nil || got != key {
		t.Fatalf("cosign's bundle does not verify: %v", err)
	}
	other := digest.FromString("another image")
	if _, err := verifyBundle(data, other, []*publicKey{key}); !errors.Is(err, errOtherDigest) {
		t.Errorf("bundle checked against another digest: got %v, expected errOtherDigest", err)
	}
	stranger := newTestKey(t, "ecdsa").pub
	if _, err := verifyBundle(data, fixtureDigest, []*publicKey{stranger}); !errors.Is(err, errUntrusted) {
		t.Errorf("bundle checked with another key: got %v, expected errUntrusted", err)
	}
	// A flipped payload byte breaks the signature.
	var b map[string]any
	_ = json.Unmarshal(data, &b)
	env := b["dsseEnvelope"].(map[string]any)
	payload, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
	env["payload"] = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(payload), "cosign/sign/v1", "cosign/sign/v2", 1)))
	tampered, _ := json.Marshal(b)
	if _, err := verifyBundle(tampered, fixtureDigest, []*publicKey{key}); !errors.Is(err, errUntrusted) {
		t.Errorf("tampered bundle: got %v, expected errUntrusted", err)
	}
}

func TestCosignClassicFixture(t *testing.T) {
	data, err := os.ReadFile("testdata/cosign-v2-signature.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct{ Digest, Payload, Signature string }
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(fx.Payload)
	key := fixtureKey(t)
	if got, err := verifySimpleSigning(payload, fx.Signature, digest.Digest(fx.Digest), []*publicKey{key}); err != nil || got != key {
		t.Fatalf("cosign's classic signature does not verify: %v", err)
	}
	if _, err := verifySimpleSigning(payload, fx.Signature, digest.FromString("x"), []*publicKey{key}); !errors.Is(err, errOtherDigest) || !strings.Contains(err.Error(), fx.Digest) {
		t.Errorf("another digest: got %v, expected errOtherDigest naming %s", err, fx.Digest)
	}
	stranger := newTestKey(t, "ed25519").pub
	if _, err := verifySimpleSigning(payload, fx.Signature, digest.Digest(fx.Digest), []*publicKey{stranger}); !errors.Is(err, errUntrusted) {
		t.Errorf("another key: got %v, expected errUntrusted", err)
	}
	if _, err := verifySimpleSigning(payload, "not base64!", digest.Digest(fx.Digest), []*publicKey{key}); err == nil {
		t.Error("a signature annotation that is not base64 verified")
	}
}

func TestSimpleSigningKeyTypes(t *testing.T) {
	dgst := digest.FromString("image manifest")
	for _, kind := range []string{"ecdsa", "ed25519", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			k := newTestKey(t, kind)
			payload := simpleSigningPayload("r.example.com/app", dgst)
			sig := base64.StdEncoding.EncodeToString(k.sign(t, payload))
			other := newTestKey(t, "ecdsa").pub
			got, err := verifySimpleSigning(payload, sig, dgst, []*publicKey{other, k.pub})
			if err != nil || got != k.pub {
				t.Fatalf("got key %v, err %v; expected the second key", got, err)
			}
			// The payload signed for another image does not carry over.
			payload2 := simpleSigningPayload("r.example.com/app", digest.FromString("other"))
			sig2 := base64.StdEncoding.EncodeToString(k.sign(t, payload2))
			if _, err := verifySimpleSigning(payload2, sig2, dgst, []*publicKey{k.pub}); !errors.Is(err, errOtherDigest) {
				t.Errorf("payload for another digest: got %v", err)
			}
			// A signature over another payload does not verify this one.
			if _, err := verifySimpleSigning(payload, sig2, dgst, []*publicKey{k.pub}); !errors.Is(err, errUntrusted) {
				t.Errorf("signature of another payload: got %v", err)
			}
		})
	}
}

func TestSimpleSigningWrongType(t *testing.T) {
	k := newTestKey(t, "ecdsa")
	dgst := digest.FromString("m")
	payload := []byte(strings.Replace(string(simpleSigningPayload("r", dgst)), "cosign container image signature", "atomic container signature", 1))
	sig := base64.StdEncoding.EncodeToString(k.sign(t, payload))
	if _, err := verifySimpleSigning(payload, sig, dgst, []*publicKey{k.pub}); err == nil || !strings.Contains(err.Error(), "atomic container signature") {
		t.Errorf("payload of another type: got %v", err)
	}
}

func TestBundleDSSE(t *testing.T) {
	dgst := digest.FromString("image manifest")
	other := digest.FromString("another image")
	for _, kind := range []string{"ecdsa", "ed25519", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			k := newTestKey(t, kind)
			b := dsseBundle(t, k, statementPayload(cosignSignPredicate, other, dgst))
			if got, err := verifyBundle(b, dgst, []*publicKey{k.pub}); err != nil || got != k.pub {
				t.Fatalf("bundle does not verify: %v", err)
			}
			if _, err := verifyBundle(b, digest.FromString("third"), []*publicKey{k.pub}); !errors.Is(err, errOtherDigest) {
				t.Errorf("third digest: got %v", err)
			}
			if _, err := verifyBundle(b, dgst, []*publicKey{newTestKey(t, kind).pub}); !errors.Is(err, errUntrusted) {
				t.Errorf("another key: got %v", err)
			}
		})
	}
	k := newTestKey(t, "ecdsa")
	attestation := dsseBundle(t, k, statementPayload("https://slsa.dev/provenance/v1", dgst))
	if _, err := verifyBundle(attestation, dgst, []*publicKey{k.pub}); err == nil || !strings.Contains(err.Error(), "attestation is no signature") {
		t.Errorf("attestation taken for a signature: %v", err)
	}
	noSubject := dsseBundle(t, k, statementPayload(cosignSignPredicate))
	if _, err := verifyBundle(noSubject, dgst, []*publicKey{k.pub}); err == nil || !strings.Contains(err.Error(), "no subject") {
		t.Errorf("statement without subject: %v", err)
	}
}

func TestBundleMessageSignature(t *testing.T) {
	dgst := digest.FromString("image manifest")
	sum, _ := hex.DecodeString(dgst.Encoded())
	for _, kind := range []string{"ecdsa", "rsa"} {
		k := newTestKey(t, kind)
		if got, err := verifyBundle(messageBundle(t, k, sum), dgst, []*publicKey{k.pub}); err != nil || got != k.pub {
			t.Errorf("%s: message signature does not verify: %v", kind, err)
		}
		otherSum := sha256.Sum256([]byte("other"))
		if _, err := verifyBundle(messageBundle(t, k, otherSum[:]), dgst, []*publicKey{k.pub}); !errors.Is(err, errOtherDigest) {
			t.Errorf("%s: message signature over another digest: got %v", kind, err)
		}
	}
}

func TestBundleMalformed(t *testing.T) {
	k := newTestKey(t, "ecdsa").pub
	dgst := digest.FromString("m")
	for name, data := range map[string]string{
		"not json":     "{",
		"media type":   `{"mediaType":"application/json","dsseEnvelope":{}}`,
		"empty":        `{"mediaType":"` + BundleArtifactType + `"}`,
		"payload type": `{"mediaType":"` + BundleArtifactType + `","dsseEnvelope":{"payloadType":"text/plain","payload":"e30="}}`,
	} {
		if _, err := verifyBundle([]byte(data), dgst, []*publicKey{k}); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}
