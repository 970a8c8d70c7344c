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
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/hashicorp/go-hclog"
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
	rec, err := m.importArchive(ctx, f, ref, pm)
	if err != nil {
		return nil, fmt.Errorf("failed to import archive: %w", err)
	}
	defer func() {
		if retErr != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			_ = m.client.ImageService().Delete(dctx, ref)
		}
	}()
	img := client.NewImageWithPlatform(m.client, rec, pm)
	if err := verify(ctx, verifyFn, ref, img.Target().Digest); err != nil {
		return nil, err
	}
	if err := img.Unpack(ctx, m.cfg.Snapshotter); err != nil {
		return nil, fmt.Errorf("failed to unpack: %w", err)
	}
	logger.Info("loaded image from archive", "archive", path, "digest", img.Target().Digest)
	return img, nil
}

// importArchive writes the archive's blobs into the content store and
// names its index ref, and nothing else: names the archive carries are
// ignored, so loading never replaces another image.
func (m *Manager) importArchive(ctx context.Context, r io.Reader, ref string, pm platforms.MatchComparer) (images.Image, error) {
	cs := m.client.ContentStore()
	index, err := archive.ImportIndex(ctx, cs, r)
	if err != nil {
		return images.Image{}, err
	}
	// label the children so that containerd's GC keeps what the image needs
	handler := images.SetChildrenLabels(cs, images.FilterPlatforms(images.ChildrenHandler(cs), pm))
	if err := images.WalkNotEmpty(ctx, handler, index); err != nil {
		return images.Image{}, err
	}
	is := m.client.ImageService()
	rec := images.Image{Name: ref, Target: index}
	if _, err := is.Update(ctx, rec, "target"); err == nil || !errdefs.IsNotFound(err) {
		return rec, err
	}
	return is.Create(ctx, rec)
}
