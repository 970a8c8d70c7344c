package trust

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// maxContent bounds every manifest, index and blob read for verification.
const maxContent = 4 << 20

// source reads the signatures of one repository through containerd's
// docker resolver and fetcher.
type source struct {
	name     string // registry host and repository, no tag
	resolver remotes.Resolver
	fetcher  remotes.Fetcher
	sawAPI   *atomic.Bool // a referrers API answered 200
}

func newSource(ctx context.Context, hosts docker.RegistryHosts, name string, dgst digest.Digest) (*source, error) {
	s := &source{name: name, sawAPI: &atomic.Bool{}}
	s.resolver = docker.NewResolver(docker.ResolverOptions{Hosts: recordingHosts(hosts, s.sawAPI)})
	f, err := s.resolver.Fetcher(ctx, name+"@"+dgst.String())
	if err != nil {
		return nil, fmt.Errorf("failed to set up a fetcher for %s: %w", name, err)
	}
	s.fetcher = f
	return s, nil
}

// referrers lists the manifests that refer to dgst, through the referrers
// API or, where the registry has none, the "sha256-<hex>" tag fallback. The
// layout says which answered.
func (s *source) referrers(ctx context.Context, dgst digest.Digest) ([]ocispec.Descriptor, string, error) {
	rf, ok := s.fetcher.(remotes.ReferrersFetcher)
	if !ok {
		return nil, "", fmt.Errorf("the registry client cannot list referrers")
	}
	descs, err := rf.FetchReferrers(ctx, dgst)
	if err != nil {
		return nil, "", fmt.Errorf("failed to list the referrers of %s: %w", dgst, err)
	}
	layout := LayoutBundleTag
	if s.sawAPI.Load() {
		layout = LayoutBundleReferrer
	}
	return descs, layout, nil
}

// tag resolves the manifest tagged tag in the repository; a missing tag is
// (nil, nil).
func (s *source) tag(ctx context.Context, tag string) (*ocispec.Descriptor, error) {
	_, desc, err := s.resolver.Resolve(ctx, s.name+":"+tag)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to resolve %s:%s: %w", s.name, tag, err)
	}
	return &desc, nil
}

// manifest fetches and decodes the image manifest desc describes.
func (s *source) manifest(ctx context.Context, desc ocispec.Descriptor) (*ocispec.Manifest, error) {
	b, err := s.read(ctx, desc)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s is not JSON: %w", desc.Digest, err)
	}
	return &m, nil
}

// read fetches desc's content and checks its size and digest.
func (s *source) read(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("descriptor digest %q: %w", desc.Digest, err)
	}
	if desc.Size > maxContent {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d read for verification", desc.Digest, desc.Size, maxContent)
	}
	rc, err := s.fetcher.Fetch(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxContent+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", desc.Digest, err)
	}
	if desc.Size > 0 && int64(len(b)) != desc.Size {
		return nil, fmt.Errorf("%s: the registry served %d bytes, the descriptor says %d", desc.Digest, len(b), desc.Size)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("%s: the registry served content with digest %s", desc.Digest, got)
	}
	return b, nil
}

// quietContext silences containerd's client-side logging, which goes to the
// process's stderr outside hclog and may carry registry URLs with account
// names; what matters comes back in errors.
func quietContext(ctx context.Context) context.Context {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.PanicLevel)
	return log.WithLogger(ctx, logrus.NewEntry(l))
}

// recordingHosts wraps each host's HTTP client to note in sawAPI when a
// referrers API request succeeds, which tells the referrer layout from its
// tag fallback.
func recordingHosts(hosts docker.RegistryHosts, sawAPI *atomic.Bool) docker.RegistryHosts {
	return func(host string) ([]docker.RegistryHost, error) {
		hs, err := hosts(host)
		if err != nil {
			return nil, err
		}
		out := make([]docker.RegistryHost, len(hs))
		for i, h := range hs {
			c := http.Client{}
			if h.Client != nil {
				c = *h.Client
			}
			base := c.Transport
			if base == nil {
				base = http.DefaultTransport
			}
			c.Transport = recorder{base: base, sawAPI: sawAPI}
			h.Client = &c
			out[i] = h
		}
		return out, nil
	}
}

type recorder struct {
	base   http.RoundTripper
	sawAPI *atomic.Bool
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusOK && req.Method == http.MethodGet &&
		strings.Contains(req.URL.Path, "/referrers/") {
		r.sawAPI.Store(true)
	}
	return resp, err
}
