// Package trust verifies the cosign signatures of an image digest against
// the operator's public keys, under a policy chosen per image name prefix.
//
// Both layouts cosign writes are read from the image's own registry: the
// classic "sha256-<hex>.sig" tag holding simple-signing payloads, and the
// Sigstore bundle (cosign v3) stored as an OCI referrer of the digest or
// under its "sha256-<hex>" referrers tag fallback. The checks are sigstore's
// own libraries: sigstore-go verifies bundles, sigstore/sigstore loads keys
// and verifies simple-signing payloads. A rule trusts public keys, and
// keyless identities (certificate issuer and subject) under a Sigstore
// trusted root file; a keyless bundle's certificate chain, transparency log
// entry and timestamps are checked offline, from what the bundle carries.
package trust

import (
	"fmt"
	"sort"
	"strings"

	"github.com/distribution/reference"
)

// Policy says what happens to an image that is not verified.
type Policy string

const (
	// PolicyOff skips verification: no registry request is made.
	PolicyOff Policy = "off"
	// PolicyWarn verifies, and only warns when that fails.
	PolicyWarn Policy = "warn"
	// PolicyEnforce fails an image that is not signed by a trusted key.
	PolicyEnforce Policy = "enforce"
)

// DefaultRuleName is Result.Rule and Error.Rule for an image that matches
// no rule.
const DefaultRuleName = "default"

func parsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyOff, PolicyWarn, PolicyEnforce:
		return p, nil
	}
	return "", fmt.Errorf("%q: must be one of off, warn, enforce", s)
}

// RawRule is one trust.rule block as the plugin config decodes it.
type RawRule struct {
	Prefix      string
	PublicKeys  []string
	Identities  []RawIdentity
	TrustedRoot string // trusted_root.json; needed with Identities
	Threshold   int    // different signers needed; 0 means 1
	Policy      string // "" means enforce
}

// Rule binds the images whose normalized reference starts with Prefix to
// the public keys in PublicKeys (PEM file paths) and to the keyless
// Identities whose certificates chain to the TrustedRoot file.
type Rule struct {
	Prefix      string
	PublicKeys  []string
	Identities  []Identity
	TrustedRoot string
	Threshold   int // different keys or certificate identities that must sign
	Policy      Policy

	keys []*publicKey // loaded from PublicKeys by ParseConfig
	root *trustedRoot // loaded from TrustedRoot by ParseConfig
}

// Name is the rule's Prefix, or DefaultRuleName for the default rule.
func (r Rule) Name() string {
	if r.Prefix == "" {
		return DefaultRuleName
	}
	return r.Prefix
}

// Config is the validated trust block.
type Config struct {
	DefaultPolicy Policy
	Rules         []Rule // longest prefix first
}

// parseKeyless validates and loads the identities and trusted root of raw
// into r: identities need a trusted root, and a trusted root identities.
func parseKeyless(r *Rule, raw RawRule, field string) error {
	switch {
	case len(raw.Identities) > 0 && raw.TrustedRoot == "":
		return fmt.Errorf("%s.trusted_root: a rule with identities needs a trusted root file (trusted_root.json)", field)
	case len(raw.Identities) == 0 && raw.TrustedRoot != "":
		return fmt.Errorf("%s.identity: a rule with a trusted_root needs at least one identity block", field)
	case raw.TrustedRoot == "":
		return nil
	}
	for i, ri := range raw.Identities {
		id, err := parseIdentity(ri)
		if err != nil {
			return fmt.Errorf("%s.identity[%d].%w", field, i, err)
		}
		r.Identities = append(r.Identities, id)
	}
	tr, err := loadTrustedRoot(raw.TrustedRoot)
	if err != nil {
		return fmt.Errorf("%s.trusted_root: %q: %w", field, raw.TrustedRoot, err)
	}
	r.TrustedRoot, r.root = raw.TrustedRoot, tr
	return nil
}

// ParseConfig validates the trust block: policies are off, warn or enforce
// (default_policy "" is off, a rule's "" is enforce); prefixes are non-empty,
// unique and start with a registry host, as normalized references do
// ("docker.io/library/busybox"); rules that warn or enforce name at least one
// key; every key file holds a PEM public key (ECDSA P-256, Ed25519 or RSA of
// at least 2048 bits). Errors name the field: trust.rule[1].public_keys.
func ParseConfig(defaultPolicy string, rules []RawRule) (*Config, error) {
	cfg := &Config{DefaultPolicy: PolicyOff}
	if defaultPolicy != "" {
		p, err := parsePolicy(defaultPolicy)
		if err != nil {
			return nil, fmt.Errorf("trust.default_policy: %w", err)
		}
		cfg.DefaultPolicy = p
	}
	seen := map[string]int{}
	for i, raw := range rules {
		field := fmt.Sprintf("trust.rule[%d]", i)
		r := Rule{Prefix: raw.Prefix, Policy: PolicyEnforce}
		if raw.Policy != "" {
			p, err := parsePolicy(raw.Policy)
			if err != nil {
				return nil, fmt.Errorf("%s.policy: %w", field, err)
			}
			r.Policy = p
		}
		if err := checkPrefix(raw.Prefix); err != nil {
			return nil, fmt.Errorf("%s.prefix: %w", field, err)
		}
		if j, dup := seen[raw.Prefix]; dup {
			return nil, fmt.Errorf("%s.prefix: %q: already used by trust.rule[%d]", field, raw.Prefix, j)
		}
		seen[raw.Prefix] = i
		if err := parseKeyless(&r, raw, field); err != nil {
			return nil, err
		}
		if len(raw.PublicKeys) == 0 && len(raw.Identities) == 0 && r.Policy != PolicyOff {
			return nil, fmt.Errorf("%s.public_keys: a rule with policy %q needs at least one public key file, or an identity with a trusted_root", field, r.Policy)
		}
		if r.Threshold = max(raw.Threshold, 1); raw.Threshold < 0 || r.Threshold > max(len(raw.PublicKeys)+len(raw.Identities), 1) {
			return nil, fmt.Errorf("%s.threshold: %d: must be between 1 and the number of public keys and identities of the rule (%d)", field, raw.Threshold, len(raw.PublicKeys)+len(raw.Identities))
		}
		for _, path := range raw.PublicKeys {
			k, err := loadPublicKey(path)
			if err != nil {
				return nil, fmt.Errorf("%s.public_keys: %q: %w", field, path, err)
			}
			r.PublicKeys = append(r.PublicKeys, path)
			r.keys = append(r.keys, k)
		}
		cfg.Rules = append(cfg.Rules, r)
	}
	sort.SliceStable(cfg.Rules, func(i, j int) bool { return len(cfg.Rules[i].Prefix) > len(cfg.Rules[j].Prefix) })
	return cfg, nil
}

// checkPrefix accepts the start of a normalized reference: a registry host
// (with a dot or port, or localhost), then optionally a path.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("must not be empty; expected the start of an image name with its registry, e.g. \"registry.example.com/team/\"")
	}
	if strings.TrimSpace(prefix) != prefix || strings.ContainsAny(prefix, " \t\n@") {
		return fmt.Errorf("%q: must not contain whitespace or \"@\"", prefix)
	}
	host, _, _ := strings.Cut(prefix, "/")
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		return fmt.Errorf("%q: must start with a registry host, as in \"docker.io/library/busybox\" or \"registry.example.com/team/\"", prefix)
	}
	if host != strings.ToLower(host) {
		return fmt.Errorf("%q: the registry host must be lowercase, as in normalized image names", prefix)
	}
	return nil
}

// Match returns the rule with the longest prefix of ref, normalized
// ("busybox" is "docker.io/library/busybox:latest"), and true; or the default
// rule (empty Prefix, DefaultPolicy) and false.
func (c *Config) Match(ref string) (Rule, bool) {
	if c == nil {
		return Rule{Policy: PolicyOff}, false
	}
	name := normalize(ref)
	best := -1
	for i, r := range c.Rules {
		if strings.HasPrefix(name, r.Prefix) && (best < 0 || len(r.Prefix) > len(c.Rules[best].Prefix)) {
			best = i
		}
	}
	if best < 0 {
		return Rule{Policy: c.DefaultPolicy}, false
	}
	return c.Rules[best], true
}

// normalize is ref in its fully qualified form, or ref itself when it does
// not parse (it then only matches prefixes written that way).
func normalize(ref string) string {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return ref
	}
	return named.String()
}
