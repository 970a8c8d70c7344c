package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// testKey is a key pair made for a test, its public half written as PEM.
type testKey struct {
	signer  crypto.Signer
	pubPath string
	pub     *publicKey
}

func newTestKey(t *testing.T, kind string) *testKey {
	t.Helper()
	var (
		signer crypto.Signer
		err    error
	)
	switch kind {
	case "ecdsa":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		signer, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ed25519":
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa-1024":
		signer, err = rsa.GenerateKey(rand.Reader, 1024)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), kind+".pub")
	writeFile(t, path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	k := &testKey{signer: signer, pubPath: path}
	if kind != "ecdsa-p384" && kind != "rsa-1024" {
		if k.pub, err = loadPublicKey(path); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// sign signs message as cosign does with this kind of key.
func (k *testKey) sign(t *testing.T, message []byte) []byte {
	t.Helper()
	var (
		sig []byte
		err error
	)
	if _, ok := k.signer.(ed25519.PrivateKey); ok {
		sig, err = k.signer.Sign(rand.Reader, message, crypto.Hash(0))
	} else {
		sum := sha256.Sum256(message)
		sig, err = k.signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// simpleSigningPayload is the payload cosign signs in the classic layout.
func simpleSigningPayload(repo string, dgst digest.Digest) []byte {
	return []byte(fmt.Sprintf(`{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`, repo, dgst))
}

// statementPayload is the in-toto statement cosign v3 signs in a bundle.
func statementPayload(predicate string, dgsts ...digest.Digest) []byte {
	st := map[string]any{"_type": "https://in-toto.io/Statement/v1", "predicateType": predicate, "predicate": map[string]any{}}
	var subjects []any
	for _, d := range dgsts {
		subjects = append(subjects, map[string]any{"digest": map[string]string{d.Algorithm().String(): d.Encoded()}})
	}
	st["subject"] = subjects
	b, _ := json.Marshal(st)
	return b
}

// dsseBundle is a v0.3 bundle with a DSSE envelope of statement signed by k.
func dsseBundle(t *testing.T, k *testKey, statement []byte) []byte {
	t.Helper()
	sig := k.sign(t, dsse.PAE(inTotoPayloadType, statement))
	b, err := json.Marshal(map[string]any{
		"mediaType":            BundleArtifactType,
		"verificationMaterial": map[string]any{"publicKey": map[string]string{"hint": "test"}},
		"dsseEnvelope": map[string]any{
			"payload":     base64.StdEncoding.EncodeToString(statement),
			"payloadType": inTotoPayloadType,
			"signatures":  []any{map[string]string{"sig": base64.StdEncoding.EncodeToString(sig)}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// messageBundle is a v0.3 bundle with a message signature over sum.
func messageBundle(t *testing.T, k *testKey, sum []byte) []byte {
	t.Helper()
	sig, err := k.signer.Sign(rand.Reader, sum, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{
		"mediaType":            BundleArtifactType,
		"verificationMaterial": map[string]any{"publicKey": map[string]string{"hint": "test"}},
		"messageSignature": map[string]any{
			"messageDigest": map[string]string{"algorithm": "SHA2_256", "digest": base64.StdEncoding.EncodeToString(sum)},
			"signature":     base64.StdEncoding.EncodeToString(sig),
		},
	})
	return b
}
