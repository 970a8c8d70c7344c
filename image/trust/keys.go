package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxKeyFile bounds what is read of a key file.
const maxKeyFile = 64 << 10

// errBadSignature is wrapped when a signature does not verify with a key.
var errBadSignature = errors.New("signature does not verify")

// publicKey is one trusted key, as cosign uses it: ECDSA P-256 and RSA
// (PKCS #1 v1.5) over SHA-256, or Ed25519 over the message itself.
type publicKey struct {
	path string
	key  crypto.PublicKey
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
	if block == nil {
		return nil, fmt.Errorf("no PEM block found; expected a public key such as the cosign.pub written by `cosign generate-key-pair`")
	}
	var (
		key any
		err error
	)
	switch {
	case block.Type == "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case block.Type == "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case strings.Contains(block.Type, "PRIVATE KEY"):
		return nil, fmt.Errorf("the PEM block is a %s; give the public key (cosign.pub), never the private one", strings.ToLower(block.Type))
	default:
		return nil, fmt.Errorf("unexpected PEM block %q; expected \"PUBLIC KEY\"", block.Type)
	}
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
	sum := sha256.Sum256(block.Bytes)
	return &publicKey{key: key, fingerprint: hex.EncodeToString(sum[:])}, nil
}

// verify checks sig over message.
func (k *publicKey) verify(message, sig []byte) error {
	if ek, ok := k.key.(ed25519.PublicKey); ok {
		if !ed25519.Verify(ek, message, sig) {
			return errBadSignature
		}
		return nil
	}
	sum := sha256.Sum256(message)
	return k.verifyDigest(sum[:], sig)
}

// verifyDigest checks sig over a message known only by its SHA-256 digest,
// which Ed25519 cannot do.
func (k *publicKey) verifyDigest(sum, sig []byte) error {
	switch key := k.key.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(key, sum, sig) {
			return errBadSignature
		}
		return nil
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(key, crypto.SHA256, sum, sig) != nil {
			return errBadSignature
		}
		return nil
	}
	return fmt.Errorf("a %T key cannot verify a signature over a message digest", k.key)
}
