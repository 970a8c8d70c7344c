package image

import (
	"context"
	"errors"
	"fmt"

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
