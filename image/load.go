package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrInvalidPlatform wraps the error of a Request.Platform that is not a
// platform specifier.
var ErrInvalidPlatform = errors.New("invalid platform")

// platformMatcher is the matcher for a request's platform: this machine's
// when empty, else exactly the one named.
func (m *Manager) platformMatcher(p string) (platforms.MatchComparer, error) {
	if p == "" {
		return m.platform, nil
	}
	spec, err := platformSpec(p)
	if err != nil {
		return nil, err
	}
	return platforms.Only(spec), nil
}

// platformSpec is the platform p names, this machine's when empty.
func platformSpec(p string) (ocispec.Platform, error) {
	if p == "" {
		return platforms.DefaultSpec(), nil
	}
	spec, err := platforms.Parse(p)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("%w: %q is not a platform such as %q: %w", ErrInvalidPlatform, p, "linux/arm64", err)
	}
	return spec, nil
}

// checkPlatform refuses an image whose config names another platform
// than the one a request asked for (a single-platform image is not
// filtered by the pull itself).
func checkPlatform(ctx context.Context, img client.Image, want string, pm platforms.MatchComparer) error {
	if want == "" {
		return nil
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return fmt.Errorf("failed to read image config: %w", err)
	}
	got := ocispec.Platform{OS: spec.OS, Architecture: spec.Architecture, Variant: spec.Variant}
	if !pm.Match(got) {
		return fmt.Errorf("%w: image %s is for %s, not %s", ErrInvalidPlatform, img.Name(), platforms.Format(got), want)
	}
	return nil
}

// loadShared loads req.Archive as ref, once at a time per archive and
// reference however many tasks ask.
func (m *Manager) loadShared(ctx context.Context, logger hclog.Logger, req Request, ref string, pm platforms.MatchComparer, timeout time.Duration) (client.Image, error) {
	key := "load\x00" + req.Archive + "\x00" + ref + "\x00" + req.Platform + "\x00" + req.VerifyKey
	img, err, _ := m.flights.doWatched(ctx, key, timeout, nil, func(lctx context.Context, _ func(Progress)) (client.Image, error) {
		return m.load(lctx, logger, ref, req.Archive, pm, req.Verify)
	})
	if err != nil {
		return nil, fmt.Errorf("failed to load image %q from %s: %w", ref, req.Archive, err)
	}
	return img, nil
}

// load imports a docker save or OCI archive into the store under ref (and
// no other name), verifies it and unpacks it for the snapshotter. A failed
// load leaves neither the image nor its content behind.
func (m *Manager) load(ctx context.Context, logger hclog.Logger, ref, path string, pm platforms.MatchComparer, verifyFn VerifyFunc) (_ client.Image, retErr error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open archive: %w", err)
	}
	defer f.Close()
	ctx, done, err := m.client.WithLease(ctx, leases.WithExpiration(leaseGrace))
	if err != nil {
		return nil, fmt.Errorf("failed to create lease: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := done(dctx); err != nil {
			logger.Warn("failed to delete load lease", "error", err)
		}
	}()
	index, err := m.importArchive(ctx, f, pm)
	if err != nil {
		return nil, fmt.Errorf("failed to import archive: %w", err)
	}
	// verified under the trust policy before anything is named
	if err := verify(ctx, verifyFn, ref, index.Digest); err != nil {
		return nil, err
	}
	rec, created, err := m.nameLoaded(ctx, ref, index)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil && created {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			_ = m.client.ImageService().Delete(dctx, ref)
		}
	}()
	img := client.NewImageWithPlatform(m.client, rec, pm)
	if err := img.Unpack(ctx, m.cfg.Snapshotter); err != nil {
		return nil, fmt.Errorf("failed to unpack: %w", err)
	}
	logger.Info("loaded image from archive", "archive", path, "digest", img.Target().Digest)
	return img, nil
}

// importArchive writes the archive's blobs into the content store (held by
// the caller's lease) and returns its index, naming nothing: names the
// archive carries are ignored, so loading never replaces another image.
func (m *Manager) importArchive(ctx context.Context, r io.Reader, pm platforms.MatchComparer) (ocispec.Descriptor, error) {
	cs := m.client.ContentStore()
	index, err := archive.ImportIndex(ctx, cs, r)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	// label the children so that containerd's GC keeps what the image needs
	handler := images.SetChildrenLabels(cs, images.FilterPlatforms(images.ChildrenHandler(cs), pm))
	if err := images.WalkNotEmpty(ctx, handler, index); err != nil {
		return ocispec.Descriptor{}, err
	}
	return index, nil
}

// ErrNameTaken is returned when a load would store an archive under a
// name that already holds another digest.
var ErrNameTaken = errors.New("the name already holds another image")

// nameLoaded stores index under ref, only where ref is free or already
// holds that very digest: a load never changes what an existing name
// resolves to. created reports whether the record is new.
func (m *Manager) nameLoaded(ctx context.Context, ref string, index ocispec.Descriptor) (images.Image, bool, error) {
	is := m.client.ImageService()
	rec, err := is.Create(ctx, images.Image{Name: ref, Target: index})
	if err == nil {
		return rec, true, nil
	}
	if !errdefs.IsAlreadyExists(err) {
		return images.Image{}, false, fmt.Errorf("failed to name the loaded image: %w", err)
	}
	cur, err := is.Get(ctx, ref)
	if err != nil {
		return images.Image{}, false, fmt.Errorf("failed to read image %q: %w", ref, err)
	}
	if cur.Target.Digest != index.Digest {
		return images.Image{}, false, fmt.Errorf("%w: %q holds %s, the archive is %s: refused, a load never replaces an image", ErrNameTaken, ref, cur.Target.Digest, index.Digest)
	}
	return cur, false, nil
}

// StoredDigest returns the digest the image store holds under ref now.
func (m *Manager) StoredDigest(ctx context.Context, ref string) (digest.Digest, error) {
	rec, err := m.client.ImageService().Get(namespaces.WithNamespace(ctx, m.namespace), ref)
	if err != nil {
		return "", fmt.Errorf("failed to read image %q: %w", ref, err)
	}
	return rec.Target.Digest, nil
}
