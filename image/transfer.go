package image

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/transfer"
	transferimage "github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/containerd/containerd/v2/core/transfer/registry"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// minTransferStall is the shortest activity timeout for which a pull goes
// through containerd's transfer service. The transfer service shows a
// blob's bytes only as its content store receives them, a mebibyte at a
// time (content.Copy's buffer), and at most every 300ms: a pull with a
// shorter activity timeout could be cancelled as stalled on a slow but
// steady link (below about 35 KB/s per layer at 30s). Such a pull fetches
// through the plugin, which sees every read from the registry.
var minTransferStall = 30 * time.Second

// viaTransfer tells whether a pull with activity timeout stall (<= 0: none)
// goes through the transfer service.
func viaTransfer(stall time.Duration) bool {
	return stall <= 0 || stall >= minTransferStall
}

// pullVerified resolves and verifies job.ref when the job verifies, then
// fetches and unpacks it (exactly the verified digest) through the transfer
// service or, for a short activity timeout, the client, and returns the
// image stored under job.ref.
func (m *Manager) pullVerified(ctx context.Context, logger hclog.Logger, job pullJob, auth *Auth, t *pullTracker) (client.Image, error) {
	resolver, desc, err := resolveVerified(ctx, trackingResolver{Resolver: newResolver(ctx, m.cfg.HostsDir, job.host, auth), t: t}, job.verify, job.ref)
	if err != nil {
		return nil, err
	}
	var img client.Image
	switch {
	case m.lazy():
		// The transfer service fetches every layer: a lazy pull goes
		// through the client, which leaves eStargz layers to the
		// snapshotter.
		logger.Info("pulling lazily: eStargz layers are fetched on demand", "snapshotter", m.cfg.Snapshotter)
		img, err = m.fetchClient(ctx, job, resolver, t)
	case viaTransfer(job.stall):
		logger.Debug("fetching through containerd's transfer service")
		img, err = m.fetchTransfer(ctx, logger, job, auth, desc, t)
	default:
		logger.Debug("fetching through the plugin: the activity timeout is shorter than the transfer service's progress can judge", "activity_timeout", job.stall)
		img, err = m.fetchClient(ctx, job, resolver, t)
	}
	if err != nil {
		return nil, err
	}
	if job.pin != "" && img.Target().Digest != job.pin {
		return nil, fmt.Errorf("%w: registry returned %s for pinned %s", ErrDigestMismatch, img.Target().Digest, job.pin)
	}
	return img, nil
}

// fetchClient pulls and unpacks job.ref through the containerd client with
// resolver (tracking, and pinned to a verified resolution): the plugin
// fetches from the registry and writes containerd's content store, and t
// counts every byte. A lazy pull fetches only the layers the snapshotter
// does not mount from the registry itself.
func (m *Manager) fetchClient(ctx context.Context, job pullJob, resolver remotes.Resolver, t *pullTracker) (client.Image, error) {
	wrap := t.wrapHandler
	if m.lazy() {
		wrap = func(h images.Handler) images.Handler { return remoteLabels(job.ref, t.wrapHandler(h)) }
	}
	return m.client.Pull(ctx, job.ref,
		client.WithResolver(resolver),
		client.WithImageHandlerWrapper(wrap),
		client.WithPlatformMatcher(job.platform),
		client.WithPullUnpack,
		client.WithPullSnapshotter(m.cfg.Snapshotter),
	)
}

// fetchTransfer has containerd's transfer service pull job.ref (with desc,
// a verified resolution, exactly that digest) into the image job.ref and
// unpack it for the snapshotter: the daemon itself fetches from the
// registry and writes its content store, so no byte of the image passes
// through the plugin. It reads the hosts.toml tree (HostsDir is a path on
// this node, where the daemon runs) and asks the plugin for credentials per
// registry host through the transfer API's credential stream; its progress
// events feed t. What the daemon stores is held by the lease in ctx.
func (m *Manager) fetchTransfer(ctx context.Context, logger hclog.Logger, job pullJob, auth *Auth, desc *ocispec.Descriptor, t *pullTracker) (client.Image, error) {
	src := job.ref
	if desc != nil {
		var err error
		if src, err = pinnedRef(job.ref, desc.Digest); err != nil {
			return nil, err
		}
	}
	creds := credentialsFor(auth, job.host, endpoints(ctx, m.cfg.HostsDir, job.host))
	reg, err := registry.NewOCIRegistry(ctx, src,
		registry.WithHostDir(m.cfg.HostsDir),
		registry.WithCredentials(credentialHelper(creds)),
	)
	if err != nil {
		return nil, err
	}
	unpackKey := platforms.FormatAll(job.platforms[0])
	_, noUnpack := m.noTransferUnpack.Load(unpackKey)
	err = m.transfer(ctx, reg, job, !noUnpack, t)
	if !noUnpack && errdefs.IsInvalidArgument(err) && strings.Contains(err.Error(), "no unpack platforms defined") {
		// The transfer service unpacks only for the snapshotters (and,
		// with check_platform_supported, platforms) its unpack_config
		// names, by default containerd's default snapshotter, and refuses
		// to pull when asked for another: fetch only, and unpack below.
		m.noTransferUnpack.Store(unpackKey, true)
		logger.Debug("containerd's transfer service does not unpack for this snapshotter and platform", "snapshotter", m.cfg.Snapshotter, "platform", unpackKey)
		err = m.transfer(ctx, reg, job, false, t)
	}
	if err != nil {
		return nil, reviveTransferError(err)
	}

	rec, err := m.client.ImageService().Get(ctx, job.ref)
	if err != nil {
		return nil, fmt.Errorf("failed to look up the pulled image: %w", err)
	}
	img := client.NewImageWithPlatform(m.client, rec, job.platform)
	unpacked, err := img.IsUnpacked(ctx, m.cfg.Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("failed to check the unpacked image: %w", err)
	}
	if !unpacked {
		logger.Debug("unpacking through the client", "snapshotter", m.cfg.Snapshotter)
		if err := img.Unpack(ctx, m.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("failed to unpack image: %w", err)
		}
	}
	return img, nil
}

// transfer has the transfer service pull from reg into job.ref, one
// manifest (the best match for the platforms, as client.Pull picks it),
// unpacked for the snapshotter when unpack is set.
func (m *Manager) transfer(ctx context.Context, reg *registry.OCIRegistry, job pullJob, unpack bool, t *pullTracker) error {
	opts := []transferimage.StoreOpt{transferimage.WithPlatforms(job.platforms...), transferimage.WithManifestLimit(1)}
	if unpack {
		opts = append(opts, transferimage.WithUnpack(job.platforms[0], m.cfg.Snapshotter))
	}
	defer t.beginTransfer()()
	return m.client.Transfer(ctx, reg, transferimage.NewStore(job.ref, opts...), transfer.WithProgress(t.event))
}

// credentialHelper hands the transfer service the credentials a pull
// resolved beforehand, for the hosts credentialsFor allows. It never fails:
// the transfer API drops a request whose lookup fails without an answer, and
// the pull would hang on it.
type credentialHelper func(host string) (string, string, error)

func (f credentialHelper) GetCredentials(_ context.Context, _, host string) (registry.Credentials, error) {
	user, secret, _ := f(host)
	return registry.Credentials{Host: host, Username: user, Secret: secret}, nil
}

// manifestLayers returns a reader of the layers of a manifest in the
// content store, for a pull's tracker.
func (m *Manager) manifestLayers(ctx context.Context) func(digest.Digest) ([]ocispec.Descriptor, error) {
	return func(d digest.Digest) ([]ocispec.Descriptor, error) {
		b, err := content.ReadBlob(ctx, m.client.ContentStore(), ocispec.Descriptor{Digest: d})
		if err != nil {
			return nil, err
		}
		var mf ocispec.Manifest
		if err := json.Unmarshal(b, &mf); err != nil {
			return nil, fmt.Errorf("failed to parse manifest %s: %w", d, err)
		}
		return mf.Layers, nil
	}
}

// beginTransfer notes that the daemon pulls from now until the returned
// func is called.
func (t *pullTracker) beginTransfer() func() {
	t.touch()
	t.mu.Lock()
	t.transfer = true
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		t.transfer = false
		t.mu.Unlock()
	}
}

// Events of the transfer service's progress (core/transfer/local).
const (
	eventWaiting     = "waiting"
	eventDownloading = "downloading"
	eventComplete    = "complete"
	eventExists      = "already exists"
	eventExtracting  = "extracting"
	eventExtracted   = "extracted"
)

// event takes one progress event of the transfer service.
func (t *pullTracker) event(p transfer.Progress) {
	if p.Desc == nil {
		// Resolving, pulling, completed: the daemon is at work.
		t.touch()
		return
	}
	switch p.Event {
	case eventExtracting, eventExtracted:
		// Unpacking: nothing comes from the registry.
		return
	}
	t.learnManifests(p.Parents)
	d := p.Desc.Digest
	t.mu.Lock()
	t.resolved = true
	l := t.layers[d]
	switch p.Event {
	case eventWaiting, eventDownloading:
		if !t.fetched[d] {
			t.pending[d] = true
		}
		if l != nil && p.Event == eventDownloading {
			l.pos = max(l.pos, p.Progress)
		}
	case eventComplete, eventExists:
		delete(t.pending, d)
		t.fetched[d] = true
		if l != nil {
			l.done = true
		}
	}
	t.mu.Unlock()
	t.touch()
}

// learnManifests adds the layers of the manifests among parents (the
// transfer service's ref keys, "manifest-sha256:..." ) that are not known
// yet. A manifest is in the content store by the time its children are
// fetched; one that cannot be read is tried again with the next event.
func (t *pullTracker) learnManifests(parents []string) {
	for _, key := range parents {
		rest, ok := strings.CutPrefix(key, "manifest-")
		if !ok {
			continue
		}
		if i := strings.LastIndexByte(rest, '@'); i >= 0 {
			rest = rest[i+1:] // "manifest-<name>@<digest>"
		}
		d, err := digest.Parse(rest)
		if err != nil {
			continue
		}
		t.mu.Lock()
		known := t.manifests[d]
		t.mu.Unlock()
		if known || t.manifestLayers == nil {
			continue
		}
		layers, err := t.manifestLayers(d)
		if err != nil {
			continue
		}
		t.addLayers(layers)
		t.mu.Lock()
		t.manifests[d] = true
		t.mu.Unlock()
	}
}

// platformCandidates are the platforms of an OS that platformsFor weighs;
// the one asked for is always among them.
var platformCandidates = []ocispec.Platform{
	{Architecture: "amd64"}, {Architecture: "amd64", Variant: "v2"}, {Architecture: "amd64", Variant: "v3"}, {Architecture: "amd64", Variant: "v4"},
	{Architecture: "386"},
	{Architecture: "arm", Variant: "v8"}, {Architecture: "arm", Variant: "v7"}, {Architecture: "arm", Variant: "v6"}, {Architecture: "arm", Variant: "v5"},
	{Architecture: "arm64"},
	{Architecture: "arm64", Variant: "v8.1"}, {Architecture: "arm64", Variant: "v8.2"}, {Architecture: "arm64", Variant: "v8.3"},
	{Architecture: "arm64", Variant: "v8.4"}, {Architecture: "arm64", Variant: "v8.5"}, {Architecture: "arm64", Variant: "v9"},
}

// platformsFor lists spec and the platforms that platforms.Only(spec)
// accepts in its place (an amd64 machine runs 386 images, arm/v7 runs v6),
// best first. The transfer service takes platforms, not a matcher: in this
// order and with one manifest kept, it picks from an index what client.Pull
// with platforms.Only(spec) picks.
func platformsFor(spec ocispec.Platform) []ocispec.Platform {
	spec = platforms.Normalize(spec)
	only := platforms.Only(spec)
	out := []ocispec.Platform{spec}
	seen := map[string]bool{platforms.FormatAll(spec): true}
	for _, c := range platformCandidates {
		c.OS, c.OSVersion, c.OSFeatures = spec.OS, spec.OSVersion, spec.OSFeatures
		c = platforms.Normalize(c)
		if key := platforms.FormatAll(c); !seen[key] && only.Match(c) {
			seen[key] = true
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return only.Less(out[i], out[j]) })
	return out
}
