// Package image resolves, pulls and unpacks the OCI images tasks run, through
// containerd: local first, one pull per reference at a time, each pull inside
// a containerd lease that is removed when it ends.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

const (
	// DefaultSnapshotter is used when Config.Snapshotter is empty.
	DefaultSnapshotter = "overlayfs"
	// DefaultPullTimeout bounds a pull when neither the request nor the
	// config gives a timeout.
	DefaultPullTimeout = 5 * time.Minute

	// leaseGrace is how much longer than its pull a lease lives, so that a
	// lease left by a crashed plugin expires on its own.
	leaseGrace = 10 * time.Minute
	// cleanupTimeout bounds lease deletion after a pull.
	cleanupTimeout = 30 * time.Second
)

// Config is the plugin-level image configuration.
type Config struct {
	Snapshotter string        // "overlayfs" when empty
	HostsDir    string        // containerd hosts.toml tree (registry_config_dir); "" = none
	PullTimeout time.Duration // default for Request.Timeout; DefaultPullTimeout when 0
}

// Auth holds registry credentials. They never appear in logs or errors.
type Auth struct {
	Username, Password string
	// ServerAddress is the registry the credentials are for; empty means
	// the registry named by the image reference.
	ServerAddress string
}

// Request asks for one image.
type Request struct {
	Ref       string
	ForcePull bool
	Auth      *Auth         // task-level credentials, nil = anonymous
	Timeout   time.Duration // 0 = Config.PullTimeout
}

// Manager hands out images from one containerd namespace.
type Manager struct {
	client    *client.Client
	namespace string
	cfg       Config
	logger    hclog.Logger
	platform  platforms.MatchComparer
	flights   flightGroup[client.Image]
}

// NewManager returns a Manager for images in namespace of containerd c.
func NewManager(c *client.Client, namespace string, cfg Config, logger hclog.Logger) *Manager {
	if cfg.Snapshotter == "" {
		cfg.Snapshotter = DefaultSnapshotter
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = DefaultPullTimeout
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Manager{
		client:    c,
		namespace: namespace,
		cfg:       cfg,
		logger:    logger.Named("image"),
		platform:  platforms.Default(),
	}
}

// Ensure returns the image req.Ref names. Unless req.ForcePull, an image that
// is already in the store and unpacked for the snapshotter is returned with
// no registry round trip; otherwise it is pulled and unpacked. Concurrent
// calls for the same reference share one pull; ctx bounds only this caller's
// wait.
func (m *Manager) Ensure(ctx context.Context, req Request) (client.Image, error) {
	ref, err := Normalize(req.Ref)
	if err != nil {
		return nil, err
	}
	host, pin, err := splitRef(ref)
	if err != nil {
		return nil, err
	}
	ctx = namespaces.WithNamespace(ctx, m.namespace)
	logger := m.logger.With("image", ref)

	if !req.ForcePull {
		img, err := m.local(ctx, ref, pin)
		if err != nil {
			return nil, fmt.Errorf("failed to look up image %q: %w", ref, err)
		}
		if img != nil {
			logger.Debug("image found locally", "digest", img.Target().Digest)
			return img, nil
		}
	}

	timeout := req.Timeout
	if timeout <= 0 {
		timeout = m.cfg.PullTimeout
	}
	key := ref + "\x00" + m.cfg.Snapshotter + "\x00" + authKey(req.Auth)
	img, err, shared := m.flights.do(ctx, key, timeout, func(pctx context.Context) (client.Image, error) {
		return m.pull(pctx, logger, ref, host, pin, req.Auth, !req.ForcePull)
	})
	if err != nil {
		return nil, fmt.Errorf("failed to pull image %q: %w", ref, err)
	}
	if shared {
		logger.Debug("joined pull started by another task", "digest", img.Target().Digest)
	}
	return img, nil
}

// local returns the image when it is in the store and unpacked for the
// snapshotter, nil when it is not.
func (m *Manager) local(ctx context.Context, ref string, pin digest.Digest) (client.Image, error) {
	rec, err := m.client.ImageService().Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	img := client.NewImageWithPlatform(m.client, rec, m.platform)
	if pin != "" && img.Target().Digest != pin {
		return nil, nil
	}
	unpacked, err := img.IsUnpacked(ctx, m.cfg.Snapshotter)
	if err != nil {
		// Content for this platform is missing or unreadable: pull again.
		m.logger.Debug("local image unusable, pulling", "image", ref, "error", err)
		return nil, nil
	}
	if !unpacked {
		return nil, nil
	}
	return img, nil
}

// pull fetches and unpacks ref inside a lease that is deleted when it ends.
// With tryLocal, an image whose content is in the store but is not unpacked
// for the snapshotter is unpacked without a registry round trip first.
func (m *Manager) pull(ctx context.Context, logger hclog.Logger, ref, host string, pin digest.Digest, auth *Auth, tryLocal bool) (client.Image, error) {
	ctx = namespaces.WithNamespace(ctx, m.namespace)
	ctx = log.WithLogger(ctx, quietLogger())

	expiry := leaseGrace
	if deadline, ok := ctx.Deadline(); ok {
		expiry += time.Until(deadline)
	}
	ctx, done, err := m.client.WithLease(ctx, leases.WithRandomID(), leases.WithExpiration(expiry))
	if err != nil {
		return nil, fmt.Errorf("failed to create lease: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), m.namespace), cleanupTimeout)
		defer cancel()
		if err := done(dctx); err != nil {
			logger.Warn("failed to delete pull lease", "error", err)
		}
	}()

	if tryLocal {
		if img := m.unpackLocal(ctx, logger, ref, pin); img != nil {
			return img, nil
		}
	}

	start := time.Now()
	logger.Info("pulling image", "snapshotter", m.cfg.Snapshotter)
	img, err := m.client.Pull(ctx, ref,
		client.WithResolver(newResolver(ctx, m.cfg.HostsDir, host, auth)),
		client.WithPlatformMatcher(m.platform),
		client.WithPullUnpack,
		client.WithPullSnapshotter(m.cfg.Snapshotter),
	)
	if err != nil {
		err = redact(describePullError(err, pin), auth)
		logger.Warn("image pull failed", "error", err, "duration", time.Since(start))
		return nil, err
	}
	if pin != "" && img.Target().Digest != pin {
		return nil, fmt.Errorf("%w: registry returned %s for pinned %s", ErrDigestMismatch, img.Target().Digest, pin)
	}
	logger.Info("pulled image", "digest", img.Target().Digest, "duration", time.Since(start))
	return img, nil
}

// unpackLocal unpacks an image whose content is already in the store; it
// returns nil when that is not possible and a pull is needed.
func (m *Manager) unpackLocal(ctx context.Context, logger hclog.Logger, ref string, pin digest.Digest) client.Image {
	rec, err := m.client.ImageService().Get(ctx, ref)
	if err != nil {
		return nil
	}
	img := client.NewImageWithPlatform(m.client, rec, m.platform)
	if pin != "" && img.Target().Digest != pin {
		return nil
	}
	if err := img.Unpack(ctx, m.cfg.Snapshotter); err != nil {
		logger.Debug("cannot unpack from local content, pulling", "error", err)
		return nil
	}
	logger.Info("unpacked image from local content", "digest", img.Target().Digest, "snapshotter", m.cfg.Snapshotter)
	return img
}

// describePullError makes containerd's pull errors say what went wrong in
// terms of the reference, keeping the chain for IsRecoverable.
func describePullError(err error, pin digest.Digest) error {
	switch {
	case isContentMismatch(err):
		return fmt.Errorf("%w: content served by the registry does not match its digest: %w", ErrDigestMismatch, err)
	case pin != "" && errdefs.IsNotFound(err):
		return fmt.Errorf("pinned digest %s not found: the registry has no manifest with that digest: %w", pin, err)
	}
	return err
}

// authKey distinguishes pulls made with different credentials, so that a
// caller never gets the result (or the refusal) of someone else's login. It
// is a hash: credentials are never kept in the clear.
func authKey(auth *Auth) string {
	if auth == nil || (auth.Username == "" && auth.Password == "") {
		return ""
	}
	h := sha256.New()
	for _, s := range []string{auth.ServerAddress, auth.Username, auth.Password} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// quietLogger silences containerd's own client-side logging during pulls:
// it goes to the process's stderr, outside hclog, and may carry registry
// URLs with account names.
func quietLogger() *log.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.PanicLevel)
	return logrus.NewEntry(l)
}

// Info is what the driver records about the image a task ran.
type Info struct {
	Ref    string // the image name in the store
	Digest string // the digest of its target (manifest or index)
	Config ocispec.ImageConfig
}

// Describe reads the image config for the image's platform. ctx must carry
// the namespace unless the client has a default one.
func Describe(ctx context.Context, img client.Image) (Info, error) {
	spec, err := img.Spec(ctx)
	if err != nil {
		return Info{}, fmt.Errorf("failed to read config of image %q: %w", img.Name(), err)
	}
	return Info{Ref: img.Name(), Digest: img.Target().Digest.String(), Config: spec.Config}, nil
}
