// Package image resolves, pulls and unpacks the OCI images tasks run, through
// containerd: local first, one pull per reference at a time, fetched by
// containerd's transfer service inside the daemon, each pull inside a
// containerd lease that is removed when it ends.
package image

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/hashicorp/go-hclog"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// DefaultSnapshotter is used when Config.Snapshotter is empty.
	DefaultSnapshotter = "overlayfs"
	// DefaultPullTimeout bounds a pull when neither the request nor the
	// config gives a timeout.
	DefaultPullTimeout = 5 * time.Minute
	// DefaultActivityTimeout is how long a pull may go without receiving
	// data before it is cancelled as stalled, unless configured.
	DefaultActivityTimeout = 2 * time.Minute
	// DefaultProgressInterval is the least time between two progress
	// reports of a pull, unless configured.
	DefaultProgressInterval = 2 * time.Second

	// leaseGrace is how much longer than its pull a lease lives, so that a
	// lease left by a crashed plugin expires on its own.
	leaseGrace = 10 * time.Minute
	// cleanupTimeout bounds lease deletion after a pull.
	cleanupTimeout = 30 * time.Second
	// configCacheSize bounds the image configs a Manager remembers.
	configCacheSize = 256
	// describeTimeout bounds reading the config of an image Ensure got.
	describeTimeout = 30 * time.Second
)

// Config is the plugin-level image configuration.
type Config struct {
	Snapshotter string        // "overlayfs" when empty
	HostsDir    string        // containerd hosts.toml tree (registry_config_dir); "" = none
	PullTimeout time.Duration // default for Request.Timeout; DefaultPullTimeout when 0

	// ActivityTimeout (pull_activity_timeout) cancels a pull during which
	// no data arrives from the registry for that long; the default for
	// Request.ActivityTimeout. DefaultActivityTimeout when 0; < 0 turns
	// stall detection off.
	ActivityTimeout time.Duration
	// ProgressInterval is the least time between two calls of a request's
	// Progress callback; DefaultProgressInterval when 0.
	ProgressInterval time.Duration

	// AuthConfig (auth.config) is the path of a docker config.json whose
	// auths, credHelpers and credsStore give credentials for registries
	// when a task has none of its own. Read at every pull.
	AuthConfig string
	// AuthHelper (auth.helper) names a docker credential helper, the
	// binary docker-credential-<AuthHelper> on PATH, asked before
	// AuthConfig when a task has no credentials of its own.
	AuthHelper string
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
	Ref string
	// Normalized says that Ref is already what Normalize makes of it, as
	// when the caller normalized it to judge it: Ensure takes it as is.
	Normalized bool
	ForcePull  bool
	// Auth holds task-level credentials. When set they are the only ones
	// used; when nil, plugin-level credentials (Config.AuthHelper, then
	// Config.AuthConfig) are looked up for the image's registry, and
	// without any the pull is anonymous.
	Auth *Auth
	// AuthSoftFail (auth_soft_fail): when looking up plugin-level
	// credentials fails, pull anonymously (and log a warning) instead of
	// failing.
	AuthSoftFail bool
	Timeout      time.Duration // bounds the whole pull; 0 = Config.PullTimeout
	// ActivityTimeout cancels the pull when no data arrives for that long
	// (ErrPullStalled); 0 = Config.ActivityTimeout, < 0 = never.
	ActivityTimeout time.Duration
	// Progress, when set, is called while the image is pulled, at most
	// every Config.ProgressInterval and once more when all layers are in,
	// also when this request joined a pull started by another. Calls never
	// overlap and none comes after Ensure returns; it must not block long.
	Progress func(Progress)
	// Verify, when set, checks the digest the reference resolves to before
	// the image is used: a local image's digest, or a pull's resolution
	// before its layers are fetched (ErrNotVerified when it refuses).
	// VerifyKey names the check, so that only requests with the same one
	// share a pull.
	Verify    VerifyFunc
	VerifyKey string
	// Platform ("linux/arm64", "linux/arm/v7") picks the image's platform
	// instead of this machine's.
	Platform string
	// Archive is the path of a docker save or OCI archive to load the
	// image from (docker's `load`) instead of pulling it; the image is
	// stored under Ref.
	Archive string
	// AfterVerify, when set with Verify, runs once the image is got and
	// verified, before Ensure reads what the store holds under the name;
	// tests write the name there.
	AfterVerify func()
}

// Ensured is what Ensure hands back for a request.
type Ensured struct {
	Image client.Image
	// Verified is the digest the request's Verify accepted, which the
	// store held under the name when Ensure returned; "" without Verify.
	Verified digest.Digest
	// Info describes the image for the request's platform.
	Info Info
}

// Manager hands out images from one containerd namespace.
type Manager struct {
	client    *client.Client
	namespace string
	cfg       Config
	logger    hclog.Logger
	platform  platforms.MatchComparer
	flights   flightGroup[client.Image]
	// configs holds image configs by the digest of the image's target and
	// the platform asked for: content-addressed, an entry never goes stale.
	configs *lru.Cache[string, ocispec.Image]
	// noTransferUnpack holds the platforms (formatted) for which
	// containerd's transfer service has no unpack configuration for the
	// snapshotter; their pulls are unpacked through the client.
	noTransferUnpack sync.Map
}

// NewManager returns a Manager for images in namespace of containerd c.
func NewManager(c *client.Client, namespace string, cfg Config, logger hclog.Logger) *Manager {
	if cfg.Snapshotter == "" {
		cfg.Snapshotter = DefaultSnapshotter
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = DefaultPullTimeout
	}
	if cfg.ActivityTimeout == 0 {
		cfg.ActivityTimeout = DefaultActivityTimeout
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	configs, _ := lru.New[string, ocispec.Image](configCacheSize) // fails only for a size <= 0
	return &Manager{
		client:    c,
		namespace: namespace,
		cfg:       cfg,
		logger:    logger.Named("image"),
		platform:  platforms.Default(),
		configs:   configs,
	}
}

// Ensure returns the image req.Ref names, with the digest req.Verify
// accepted and the image's description. Unless req.ForcePull, an image that
// is already in the store and unpacked for the snapshotter is returned with
// no registry round trip; otherwise it is pulled and unpacked. Concurrent
// calls for the same reference share one pull; getting the image, the local
// lookup and the check of a request's Verify included, ends with the pull
// timeout, and ctx bounds only this caller's wait.
//
// With req.Verify, a request that joined a pull another request verified
// has the image verified for itself, and the image is returned only while
// the store holds the verified digest under the name (ErrStoreChanged when
// another writer changed it meanwhile).
func (m *Manager) Ensure(ctx context.Context, req Request) (Ensured, error) {
	ref := req.Ref
	if !req.Normalized {
		var err error
		if ref, err = Normalize(req.Ref); err != nil {
			return Ensured{}, err
		}
	}
	pm, err := m.platformMatcher(req.Platform)
	if err != nil {
		return Ensured{}, err
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = m.cfg.PullTimeout
	}
	ctx = namespaces.WithNamespace(ctx, m.namespace)

	var checked verifiedDigest
	if fn := req.Verify; fn != nil {
		req.Verify = func(ctx context.Context, ref string, dgst digest.Digest) error {
			if err := fn(ctx, ref, dgst); err != nil {
				return err
			}
			checked.set(dgst)
			return nil
		}
	}
	deadline := time.Now().Add(timeout)
	img, err := m.ensure(ctx, req, ref, pm, deadline)
	if err != nil {
		return Ensured{}, err
	}
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := checkPlatform(pctx, img, req.Platform, pm); err != nil {
		return Ensured{}, err
	}

	var verified digest.Digest
	if req.Verify != nil {
		if req.AfterVerify != nil {
			req.AfterVerify()
		}
		vctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if verified, err = m.checkVerified(vctx, req.Verify, ref, img, &checked); err != nil {
			return Ensured{}, err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	info, err := m.Describe(dctx, img, req.Platform)
	if err != nil {
		return Ensured{}, tagged{fmt.Errorf("failed to read image %q: %w", ref, err), ErrConfigUnreadable}
	}
	return Ensured{Image: img, Verified: verified, Info: info}, nil
}

// ensure gets the image: the local lookup and its verification end by
// deadline, and so does a pull this call starts; ctx bounds the wait on a
// pull, which ends by deadline for a call that joined another's.
func (m *Manager) ensure(ctx context.Context, req Request, ref string, pm platforms.MatchComparer, deadline time.Time) (client.Image, error) {
	host, pin, err := splitRef(ref)
	if err != nil {
		return nil, err
	}
	logger := m.logger.With("image", ref)

	if !req.ForcePull {
		img, err := m.ensureLocal(ctx, logger, req, ref, pin, pm, deadline)
		if err != nil || img != nil {
			return img, err
		}
	}
	timeout := time.Until(deadline)
	if timeout <= 0 {
		return nil, fmt.Errorf("failed to pull image %q: %w", ref, context.DeadlineExceeded)
	}

	if req.Archive != "" {
		return m.loadShared(ctx, logger, req, ref, pm, timeout)
	}
	spec, err := platformSpec(req.Platform)
	if err != nil {
		return nil, err
	}
	job := pullJob{platform: pm, platforms: platformsFor(spec), ref: ref, host: host, pin: pin, auth: req.Auth, softFail: req.AuthSoftFail,
		tryLocal: !req.ForcePull, stall: req.ActivityTimeout, verify: req.Verify}
	if job.stall == 0 {
		job.stall = m.cfg.ActivityTimeout
	}
	key := ref + "\x00" + m.cfg.Snapshotter + "\x00" + authKey(req.Auth) + "\x00" + fmt.Sprint(req.AuthSoftFail) + "\x00" + req.VerifyKey + "\x00" + req.Platform
	img, err, shared := m.flights.doWatched(ctx, key, timeout, req.Progress, func(pctx context.Context, publish func(Progress)) (client.Image, error) {
		return m.pull(pctx, logger, job, publish)
	})
	if err != nil {
		return nil, fmt.Errorf("failed to pull image %q: %w", ref, err)
	}
	if shared {
		logger.Debug("joined pull started by another task", "digest", img.Target().Digest)
	}
	return img, nil
}

// ensureLocal returns the image when it is in the store, unpacked and
// verified, nil when it is not there.
func (m *Manager) ensureLocal(ctx context.Context, logger hclog.Logger, req Request, ref string, pin digest.Digest, pm platforms.MatchComparer, deadline time.Time) (client.Image, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	img, err := m.local(ctx, ref, pin, pm)
	if err != nil {
		return nil, fmt.Errorf("failed to look up image %q: %w", ref, err)
	}
	if img == nil {
		return nil, nil
	}
	logger.Debug("image found locally", "digest", img.Target().Digest)
	if err := verify(ctx, req.Verify, ref, img.Target().Digest); err != nil {
		return nil, err
	}
	return img, nil
}

// local returns the image when it is in the store and unpacked for the
// snapshotter, nil when it is not.
func (m *Manager) local(ctx context.Context, ref string, pin digest.Digest, pm platforms.MatchComparer) (client.Image, error) {
	rec, err := m.client.ImageService().Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	img := client.NewImageWithPlatform(m.client, rec, pm)
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
