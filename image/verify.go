package image

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/transfer"
	"github.com/distribution/reference"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNotVerified wraps the error of a Request.Verify that refused an
// image. It is not recoverable: the same image fails the same way again.
var ErrNotVerified = errors.New("image verification failed")

// VerifyFunc checks the digest a reference resolved to before the image is
// used (and, for a pull, before anything is fetched beyond the manifest
// descriptor).
type VerifyFunc func(ctx context.Context, ref string, dgst digest.Digest) error

// verify runs fn, if any, on ref's digest.
func verify(ctx context.Context, fn VerifyFunc, ref string, dgst digest.Digest) error {
	if fn == nil {
		return nil
	}
	if err := fn(ctx, ref, dgst); err != nil {
		return fmt.Errorf("%w: %w", ErrNotVerified, err)
	}
	return nil
}

// resolveVerified resolves ref once, verifies the digest it names and
// returns that resolution, and a resolver that hands it out to the pull, so
// a tag moved after the check cannot change what is fetched. Without fn it
// asks nothing and returns r and no descriptor.
func resolveVerified(ctx context.Context, r remotes.Resolver, fn VerifyFunc, ref string) (remotes.Resolver, *ocispec.Descriptor, error) {
	if fn == nil {
		return r, nil, nil
	}
	name, desc, err := r.Resolve(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	if err := verify(ctx, fn, ref, desc.Digest); err != nil {
		return nil, nil, err
	}
	return pinnedResolver{Resolver: r, ref: ref, name: name, desc: desc}, &desc, nil
}

// pinnedRef is ref's repository at exactly digest d.
func pinnedRef(ref string, d digest.Digest) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrInvalidReference, ref, err)
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(named), d)
	if err != nil {
		return "", fmt.Errorf("failed to pin %s to %s: %w", ref, d, err)
	}
	return pinned.String(), nil
}

// pinnedResolver answers Resolve for its ref with a resolution made before.
type pinnedResolver struct {
	remotes.Resolver
	ref, name string
	desc      ocispec.Descriptor
}

func (p pinnedResolver) Resolve(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	if ref == p.ref {
		return p.name, p.desc, nil
	}
	return p.Resolver.Resolve(ctx, ref)
}

// SetOptions passes the pull's download options on, as trackingResolver does.
func (p pinnedResolver) SetOptions(options ...transfer.ImageResolverOption) {
	if ro, ok := p.Resolver.(remotes.ResolverWithOptions); ok {
		ro.SetOptions(options...)
	}
}

// Hosts returns the registry hosts of refHost as pulls see them: the
// hosts.toml tree and the plugin-level credentials (a failed credential
// lookup means anonymous). Signature verification reads through them.
func (m *Manager) Hosts(ctx context.Context, refHost string) docker.RegistryHosts {
	auth, err := m.credentials(ctx, hclog.NewNullLogger(), pullJob{host: refHost, softFail: true})
	if err != nil {
		auth = nil
	}
	return registryHosts(ctx, m.cfg.HostsDir, refHost, auth)
}

// ErrStoreChanged wraps the error of an Ensure whose verified image is no
// longer what the store holds under the name: another writer changed it.
var ErrStoreChanged = errors.New("the image store changed under a verified name")

// ErrConfigUnreadable wraps the error of an Ensure that got the image but
// could not read its config.
var ErrConfigUnreadable = errors.New("image config unreadable")

// tagged is err, which errors.Is also finds to be tag; its text is err's.
type tagged struct {
	err, tag error
}

func (t tagged) Error() string   { return t.err.Error() }
func (t tagged) Unwrap() []error { return []error{t.err, t.tag} }

// checkVerified makes sure that the image about to be used is the one
// verify accepted for this request. A request that joined a pull another
// verified has it verified for itself. Then the digest the store holds
// under ref, and the one of img, must both be the verified digest: a
// concurrent writer of the name cannot slip another image into a verified
// request. It returns the verified digest.
func (m *Manager) checkVerified(ctx context.Context, fn VerifyFunc, ref string, img client.Image, checked *verifiedDigest) (digest.Digest, error) {
	want, ok := checked.get()
	if !ok {
		want = img.Target().Digest
		if err := fn(ctx, ref, want); err != nil {
			return "", tagged{err, ErrNotVerified}
		}
	}
	stored, err := m.StoredDigest(ctx, ref)
	if err != nil {
		return "", tagged{err, ErrNotVerified}
	}
	if got := img.Target().Digest; stored != want || got != want {
		return "", tagged{fmt.Errorf("the image store holds %s under %q and the start would use %s, not the verified %s: refused", stored, ref, got, want), ErrStoreChanged}
	}
	return want, nil
}

// verifiedDigest is the digest a request's Verify accepted; the pull that
// calls Verify may outlive the request that waits on it.
type verifiedDigest struct {
	mu   sync.Mutex
	dgst digest.Digest
}

func (v *verifiedDigest) set(d digest.Digest) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.dgst = d
}

func (v *verifiedDigest) get() (digest.Digest, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dgst, v.dgst != ""
}
