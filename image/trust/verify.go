package trust

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/distribution/reference"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Result.Layout values: where the verified signature was found.
const (
	LayoutTag            = "tag"             // classic "sha256-<hex>.sig" tag
	LayoutBundleReferrer = "bundle-referrer" // bundle found through the referrers API
	LayoutBundleTag      = "bundle-tag"      // bundle found through the "sha256-<hex>" tag fallback
)

// maxSignatures bounds the signature manifests examined per image.
const maxSignatures = 32

// ErrNotVerified is matched (errors.Is) by every *Error.
var ErrNotVerified = errors.New("image signature not verified")

// Error is what Verify returns under enforce when no signature by a trusted
// key names the digest.
type Error struct {
	Image  string        // normalized reference
	Digest digest.Digest // the digest that was checked
	Rule   string        // rule prefix, or DefaultRuleName
	Reason string        // why nothing verified
	Err    error         // registry failure behind Reason, if any
}

func (e *Error) Error() string {
	return fmt.Sprintf("image %s (%s) failed signature verification under trust rule %q: %s", e.Image, e.Digest, e.Rule, e.Reason)
}

// Unwrap is the registry failure, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is matches ErrNotVerified.
func (e *Error) Is(target error) bool { return target == ErrNotVerified }

// Result is the outcome of a verification.
type Result struct {
	Policy   Policy
	Rule     string // rule prefix, or DefaultRuleName
	Verified bool
	KeyPath  string // the key that verified
	Identity string // or the keyless signer: certificate subject (issuer ...)
	Layout   string // LayoutTag, LayoutBundleReferrer or LayoutBundleTag
	Warning  string // under warn: why the image is not verified
}

// Verifier checks image digests against the trust config. It remembers
// the digests it verified, so that starting an image again asks the
// registry nothing: an entry holds for the repository, digest, rule, policy,
// the keys' contents and the whole config's fingerprint, so Verifiers that
// share a Memory (WithMemory) across configs verify again after any change
// of the rules. Digests that did not verify are asked about every time.
type Verifier struct {
	cfg      *Config
	cfgPrint string // cfg.fingerprint()
	hosts    func(refHost string) docker.RegistryHosts
	logger   hclog.Logger
	verified *Memory
}

// NewVerifier returns a Verifier for cfg (nil: everything off). hosts gives
// the registry hosts (endpoints, TLS, credentials) for an image's registry,
// as for its pull; nil means containerd's defaults: HTTPS, with plain HTTP
// only for loopback registries.
func NewVerifier(cfg *Config, hosts func(refHost string) docker.RegistryHosts, logger hclog.Logger) *Verifier {
	if hosts == nil {
		hosts = func(string) docker.RegistryHosts {
			return config.ConfigureHosts(quietContext(context.Background()), config.HostOptions{})
		}
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Verifier{cfg: cfg, cfgPrint: cfg.fingerprint(), hosts: hosts, logger: logger.Named("trust"), verified: NewMemory()}
}

// Verify checks the signatures of dgst, the digest ref was resolved to,
// under the rule matching ref. The tag in ref is never resolved again, so
// moving it cannot change what is verified. Under off nothing is fetched;
// under enforce an image without a signature by a trusted key for dgst is an
// *Error; under warn it is a Result.Warning. Registry failures count as
// unverified; a cancelled ctx is returned as such.
func (v *Verifier) Verify(ctx context.Context, ref string, dgst digest.Digest) (Result, error) {
	rule, _ := v.cfg.Match(ref)
	res := Result{Policy: rule.Policy, Rule: rule.Name()}
	if rule.Policy == PolicyOff {
		return res, nil
	}
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return res, fmt.Errorf("trust: invalid image reference %q: %w", ref, err)
	}
	if err := dgst.Validate(); err != nil {
		return res, fmt.Errorf("trust: invalid digest %q for image %s: %w", dgst, named, err)
	}
	logger := v.logger.With("image", named.String(), "digest", dgst.String(), "rule", res.Rule)

	keys := rule.keys
	if len(keys) == 0 {
		for _, p := range rule.PublicKeys {
			k, err := loadPublicKey(p)
			if err != nil {
				return res, fmt.Errorf("trust rule %q: public key %q: %w", res.Rule, p, err)
			}
			keys = append(keys, k)
		}
	}

	signers := trusted{keys: keys, ids: rule.Identities, root: rule.root, threshold: rule.Threshold}
	if signers.root == nil && rule.TrustedRoot != "" {
		if signers.root, err = loadTrustedRoot(rule.TrustedRoot); err != nil {
			return res, fmt.Errorf("trust rule %q: trusted root %q: %w", res.Rule, rule.TrustedRoot, err)
		}
	}

	cacheKey := v.verifiedKey(named, dgst, rule, keys)
	if cached, ok := v.verified.Get(cacheKey); ok {
		logger.Debug("image signature verified before", "signer", cached.Signer(), "layout", cached.Layout)
		return cached, nil
	}
	by, layout, failure := v.check(quietContext(ctx), named, dgst, signers)
	if ctx.Err() != nil {
		return res, fmt.Errorf("signature verification of %s (%s) interrupted: %w", named, dgst, ctx.Err())
	}
	if failure == nil {
		res.Verified, res.Layout = true, layout
		if by.key != nil {
			res.KeyPath = by.key.path
		} else {
			res.Identity = by.identity
		}
		logger.Info("image signature verified", "signer", res.Signer(), "layout", layout)
		v.verified.Add(cacheKey, res)
		return res, nil
	}
	failure.Image, failure.Digest, failure.Rule = named.String(), dgst, res.Rule
	if rule.Policy == PolicyEnforce {
		logger.Error("image signature not verified", "reason", failure.Reason)
		return res, failure
	}
	res.Warning = failure.Error()
	logger.Warn("image signature not verified", "reason", failure.Reason)
	return res, nil
}

// trusted is who may sign under a rule: its keys, and its identities
// under its trusted root; threshold of them must have signed.
type trusted struct {
	keys      []*publicKey
	ids       []Identity
	root      *trustedRoot
	threshold int
}

// signedBy is the key, or the keyless identity (certificate subject and
// issuer), that signed.
type signedBy struct {
	key      *publicKey
	identity string
}

// Signer is the key path or the identity that verified.
func (r Result) Signer() string {
	if r.KeyPath != "" {
		return r.KeyPath
	}
	return r.Identity
}

// check looks for a signature of dgst by one of signers: bundles first,
// then the classic tag (keys only). A nil *Error means verified by the
// returned signer.
func (v *Verifier) check(ctx context.Context, named reference.Named, dgst digest.Digest, signers trusted) (signedBy, string, *Error) {
	if len(signers.keys) == 0 && (len(signers.ids) == 0 || signers.root == nil) {
		return signedBy{}, "", &Error{Reason: "the rule names no public key and no identity"}
	}
	keys, got := signers.keys, newTally(signers.threshold)
	src, err := newSource(ctx, v.hosts(reference.Domain(named)), named.Name(), dgst)
	if err != nil {
		return signedBy{}, "", &Error{Reason: err.Error(), Err: err}
	}
	var (
		problems  []string // one per signature that did not verify
		fetchErrs []error
		examined  int
	)
	note := func(what string, err error) {
		problems = append(problems, what+": "+err.Error())
	}

	descs, layout, err := src.referrers(ctx, dgst)
	if err != nil {
		fetchErrs = append(fetchErrs, err)
	}
	for _, d := range descs {
		if d.ArtifactType != "" && d.ArtifactType != BundleArtifactType {
			continue // attestations, SBOMs, ...
		}
		if examined++; examined > maxSignatures {
			break
		}
		by, err := v.checkBundleManifest(ctx, src, d, dgst, signers)
		if err != nil {
			note("bundle "+d.Digest.String(), err)
		} else if got.add(by, layout) {
			return got.first, got.layout, nil
		}
	}

	sigTag := strings.Replace(dgst.String(), ":", "-", 1) + ".sig"
	desc, err := src.tag(ctx, sigTag)
	switch {
	case err != nil:
		fetchErrs = append(fetchErrs, err)
	case desc != nil && len(keys) > 0:
		met, err := v.checkClassic(ctx, src, *desc, dgst, keys, note, func(k *publicKey) bool { return got.add(signedBy{key: k}, LayoutTag) })
		if met {
			return got.first, got.layout, nil
		}
		if err != nil {
			note("tag "+sigTag, err)
		}
	}

	e := &Error{Err: errors.Join(fetchErrs...)}
	var reasons []string
	switch {
	case got.short() != "":
		reasons = append(reasons, got.short())
		if len(problems) > 0 {
			reasons = append(reasons, fmt.Sprintf("%d other signature(s) did not verify: %s", len(problems), strings.Join(problems, "; ")))
		}
	case len(problems) > 0:
		reasons = append(reasons, fmt.Sprintf("%d signature(s) found, none verified with the rule's %s: %s", len(problems), signers.what(), strings.Join(problems, "; ")))
	case len(fetchErrs) == 0:
		reasons = append(reasons, fmt.Sprintf("no cosign signature found (no sigstore bundle referring to the digest, no %s tag)", sigTag))
	}
	for _, err := range fetchErrs {
		reasons = append(reasons, "failed to fetch signatures: "+strings.ReplaceAll(err.Error(), "\n", " "))
	}
	e.Reason = strings.Join(reasons, "; ")
	return signedBy{}, "", e
}

// what names the kinds of signer in t, for reasons.
func (t trusted) what() string {
	switch {
	case len(t.ids) == 0:
		return "keys"
	case len(t.keys) == 0:
		return "identities"
	}
	return "keys and identities"
}

// checkBundleManifest verifies the bundle layers of one referrer manifest.
func (v *Verifier) checkBundleManifest(ctx context.Context, src *source, d ocispec.Descriptor, dgst digest.Digest, signers trusted) (signedBy, error) {
	m, err := src.manifest(ctx, d)
	if err != nil {
		return signedBy{}, err
	}
	if m.Subject != nil && m.Subject.Digest != dgst {
		return signedBy{}, fmt.Errorf("%w: the manifest's subject is %s", errOtherDigest, m.Subject.Digest)
	}
	var errs []error
	for _, l := range m.Layers {
		if !isBundleMediaType(l.MediaType) {
			continue
		}
		b, err := src.read(ctx, l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		by, err := signers.verifyBundle(b, dgst)
		if err == nil {
			return by, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return signedBy{}, fmt.Errorf("no sigstore bundle layer")
	}
	return signedBy{}, errors.Join(errs...)
}

// checkClassic verifies the simple-signing layers of the classic signature
// manifest, handing each key that signed to accept until it says the
// threshold is met; each layer that does not verify is noted.
func (v *Verifier) checkClassic(ctx context.Context, src *source, desc ocispec.Descriptor, dgst digest.Digest, keys []*publicKey, note func(string, error), accept func(*publicKey) bool) (bool, error) {
	m, err := src.manifest(ctx, desc)
	if err != nil {
		return false, err
	}
	found := 0
	for _, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType {
			continue
		}
		if found++; found > maxSignatures {
			break
		}
		payload, err := src.read(ctx, l)
		if err == nil {
			var key *publicKey
			if key, err = verifySimpleSigning(payload, l.Annotations[SignatureAnnotation], dgst, keys); err == nil {
				if accept(key) {
					return true, nil
				}
				continue
			}
		}
		note("signature "+l.Digest.String(), err)
	}
	if found == 0 {
		return false, fmt.Errorf("no simple-signing layer")
	}
	return false, nil
}
