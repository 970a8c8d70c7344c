package trust

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
)

// memorySize bounds the verified digests a Memory holds.
const memorySize = 1024

// Memory holds verified digests, least recently used forgotten first. One
// Memory may outlive its Verifier: a plugin that keeps it across configs
// starts an image verified under rules that did not change without asking
// the registry, and verifies it again once they change.
type Memory = lru.Cache[string, Result]

// NewMemory returns an empty Memory of memorySize entries.
func NewMemory() *Memory {
	m, _ := lru.New[string, Result](memorySize) // fails only for a size <= 0
	return m
}

// WithMemory makes v remember verified digests in m, shared with the
// Verifiers of earlier configs, and returns v.
func (v *Verifier) WithMemory(m *Memory) *Verifier {
	if m != nil {
		v.verified = m
	}
	return v
}

// verifiedKey names a verification: what was verified, under which config,
// rule and policy, with which keys.
func (v *Verifier) verifiedKey(named reference.Named, dgst digest.Digest, rule Rule, keys []*publicKey) string {
	var b strings.Builder
	b.WriteString(v.cfgPrint + "\x00" + named.Name() + "@" + dgst.String() + "\x00" + rule.Name() + "\x00" + string(rule.Policy))
	for _, k := range keys {
		b.WriteString("\x00" + k.path + "=" + k.fingerprint)
	}
	return b.String()
}

// fingerprint identifies the rules: the default policy and every rule's
// prefix, policy and key files with, where loaded, their contents. Two
// configs with the same fingerprint verify the same way.
func (c *Config) fingerprint() string {
	if c == nil {
		return ""
	}
	h := sha256.New()
	h.Write([]byte("default\x00" + string(c.DefaultPolicy)))
	for _, r := range c.Rules {
		h.Write([]byte("\x01rule\x00" + r.Prefix + "\x00" + string(r.Policy) + "\x00" + strconv.Itoa(r.Threshold)))
		for _, p := range r.PublicKeys {
			h.Write([]byte("\x00key\x00" + p))
		}
		for _, k := range r.keys {
			h.Write([]byte("\x00loaded\x00" + k.fingerprint))
		}
		for _, id := range r.Identities {
			h.Write([]byte("\x00identity\x00" + id.Issuer + "\x00" + id.IssuerRegexp + "\x00" + id.Subject + "\x00" + id.SubjectRegexp))
		}
		if r.root != nil {
			h.Write([]byte("\x00root\x00" + r.TrustedRoot + "\x00" + r.root.fingerprint))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
