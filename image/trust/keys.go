package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// maxKeyFile bounds what is read of a key file.
const maxKeyFile = 64 << 10

// publicKey is one trusted key, as cosign uses it: ECDSA P-256 and RSA
// (PKCS #1 v1.5) over SHA-256, or Ed25519 over the message itself. The
// checks are sigstore's own verifiers.
type publicKey struct {
	path     string
	key      crypto.PublicKey
	verifier signature.Verifier
	// fingerprint is the SHA-256 of the key's DER encoding, hex: the
	// key's identity in the cache of verified digests.
	fingerprint string
}

// loadPublicKey reads a PEM public key ("PUBLIC KEY" in PKIX form, as
// `cosign generate-key-pair` writes cosign.pub, or "RSA PUBLIC KEY").
func loadPublicKey(path string) (*publicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read the key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read the key file: %w", err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("the key file is larger than %d bytes; expected one PEM public key", maxKeyFile)
	}
	pk, err := parsePublicKey(data)
	if err != nil {
		return nil, err
	}
	pk.path = path
	return pk, nil
}

func parsePublicKey(data []byte) (*publicKey, error) {
	block, _ := pem.Decode(data)
	switch {
	case block == nil:
		return nil, fmt.Errorf("no PEM block found; expected a public key such as the cosign.pub written by `cosign generate-key-pair`")
	case strings.Contains(block.Type, "PRIVATE KEY"):
		return nil, fmt.Errorf("the PEM block is a %s; give the public key (cosign.pub), never the private one", strings.ToLower(block.Type))
	case block.Type != string(cryptoutils.PublicKeyPEMType) && block.Type != string(cryptoutils.PKCS1PublicKeyPEMType):
		return nil, fmt.Errorf("unexpected PEM block %q; expected \"PUBLIC KEY\"", block.Type)
	}
	key, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the public key: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on curve %s; supported keys are ECDSA P-256, Ed25519 and RSA", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits; at least 2048 are needed", k.N.BitLen())
		}
	default:
		return nil, fmt.Errorf("unsupported key type %T; supported keys are ECDSA P-256, Ed25519 and RSA", key)
	}
	verifier, err := signature.LoadVerifier(key, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("failed to load the public key: %w", err)
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(key)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &publicKey{key: key, verifier: verifier, fingerprint: hex.EncodeToString(sum[:])}, nil
}
