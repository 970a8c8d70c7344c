package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// loopbackClient talks to our own registries: no proxies from the environment.
var loopbackClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

// SplitRepoTag splits "name[:tag]" (tag defaults to "latest"; a ":" before
// the last "/" is a registry port, not a tag).
func SplitRepoTag(repoTag string) (name, tag string) {
	i := strings.LastIndex(repoTag, ":")
	if i < 0 || strings.Contains(repoTag[i:], "/") {
		return repoTag, "latest"
	}
	return repoTag[:i], repoTag[i+1:]
}

// Push uploads the image to the registry at host over plain HTTP with the
// OCI distribution API (monolithic blob uploads, then the manifest) as
// repoTag ("demo/busybox:1"). It returns the manifest digest. For a registry
// with TLS or auth, use Registry.Push.
func (img *Image) Push(ctx context.Context, host, repoTag string) (digest.Digest, error) {
	return PushManifest(ctx, host, repoTag, img.Descriptor().MediaType, img.ManifestBytes, img.Blobs)
}

// PushTo is Push to the registry at baseURL (scheme://host) through client,
// with basic auth when user is set.
func (img *Image) PushTo(ctx context.Context, baseURL string, client *http.Client, user, password, repoTag string) (digest.Digest, error) {
	p := pusher{base: baseURL, client: client, user: user, password: password}
	return p.push(ctx, repoTag, img.Descriptor().MediaType, img.ManifestBytes, img.Blobs)
}

// PushManifest uploads blobs, then manifest (of mediaType) as repoTag to the
// plain HTTP registry at host; the tag may also be a digest. It returns the
// manifest digest.
func PushManifest(ctx context.Context, host, repoTag, mediaType string, manifest []byte, blobs map[digest.Digest][]byte) (digest.Digest, error) {
	p := pusher{base: "http://" + host, client: loopbackClient}
	return p.push(ctx, repoTag, mediaType, manifest, blobs)
}

// pusher speaks the distribution API to one registry.
type pusher struct {
	base           string // scheme://host
	client         *http.Client
	user, password string
}

func (p pusher) push(ctx context.Context, repoTag, mediaType string, manifest []byte, blobs map[digest.Digest][]byte) (digest.Digest, error) {
	name, tag := SplitRepoTag(repoTag)
	repo := p.base + "/v2/" + name
	ds := make([]digest.Digest, 0, len(blobs))
	for d := range blobs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	for _, d := range ds {
		if err := p.pushBlob(ctx, repo, d, blobs[d]); err != nil {
			return "", err
		}
	}
	resp, err := p.do(ctx, http.MethodPut, repo+"/manifests/"+tag, mediaType, manifest)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", httpErr("put manifest "+repoTag, resp)
	}
	want := digest.FromBytes(manifest)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != want.String() {
		return "", fmt.Errorf("put manifest %s: registry says digest %s, expected %s", repoTag, got, want)
	}
	return want, nil
}

func (p pusher) pushBlob(ctx context.Context, repo string, d digest.Digest, b []byte) error {
	resp, err := p.do(ctx, http.MethodHead, repo+"/blobs/"+d.String(), "", nil)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	resp, err = p.do(ctx, http.MethodPost, repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return httpErr("start upload of "+d.String(), resp)
	}
	loc, err := url.Parse(repo)
	if err == nil {
		loc, err = loc.Parse(resp.Header.Get("Location"))
	}
	if err != nil {
		return fmt.Errorf("upload location for %s: %w", d, err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err = p.do(ctx, http.MethodPut, loc.String(), "application/octet-stream", b)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return httpErr("upload "+d.String(), resp)
	}
	return nil
}

// do sends one request and returns the response with its body read and closed
// (kept in the error message of httpErr).
func (p pusher) do(ctx context.Context, method, u, contentType string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if body != nil {
		req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	if p.user != "" {
		req.SetBasicAuth(p.user, p.password)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(msg))
	return resp, nil
}

func httpErr(what string, resp *http.Response) error {
	msg, _ := io.ReadAll(resp.Body)
	return fmt.Errorf("%s: %s %s: %s", what, resp.Request.Method, resp.Status, strings.TrimSpace(string(msg)))
}
