package trust

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeRegistry is an in-memory OCI registry on 127.0.0.1 (plain HTTP) that
// holds what cosign uploads, with or without the referrers API.
type fakeRegistry struct {
	Host string

	mu           sync.Mutex
	referrersAPI bool
	failStatus   int                                  // answer every /v2/<name>/ request with it, when set
	content      map[digest.Digest]ocispec.Descriptor // manifests and blobs by digest
	data         map[digest.Digest][]byte
	tags         map[string]digest.Digest        // "repo:tag"
	referrers    map[string][]ocispec.Descriptor // "repo@subject"
	uploads      map[string][]byte               // blob uploads in progress, by id
	nextUpload   int
	paths        []string // requests seen
}

func newFakeRegistry(t *testing.T, referrersAPI bool) *fakeRegistry {
	r := &fakeRegistry{
		referrersAPI: referrersAPI,
		content:      map[digest.Digest]ocispec.Descriptor{},
		data:         map[digest.Digest][]byte{},
		tags:         map[string]digest.Digest{},
		referrers:    map[string][]ocispec.Descriptor{},
		uploads:      map[string][]byte{},
	}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.Host = srv.Listener.Addr().String()
	return r
}

func (r *fakeRegistry) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}

func (r *fakeRegistry) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paths = append(r.paths, req.Method+" "+req.URL.Path)
	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	if p == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.failStatus != 0 {
		http.Error(w, "injected failure", r.failStatus)
		return
	}
	for _, kind := range []string{"/manifests/", "/blobs/", "/referrers/"} {
		i := strings.LastIndex(p, kind)
		if i < 0 {
			continue
		}
		repo, ref := p[:i], p[i+len(kind):]
		switch kind {
		case "/referrers/":
			if !r.referrersAPI {
				http.NotFound(w, req)
				return
			}
			idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
				Manifests: append([]ocispec.Descriptor{}, r.referrers[repo+"@"+ref]...)}
			b, _ := json.Marshal(idx)
			w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
			_, _ = w.Write(b)
			return
		case "/manifests/":
			if req.Method == http.MethodPut {
				r.pushManifest(w, req, repo, ref)
				return
			}
			d := digest.Digest(ref)
			if td, ok := r.tags[repo+":"+ref]; ok {
				d = td
			}
			r.writeContent(w, req, d)
			return
		default:
			if id, ok := strings.CutPrefix(ref, "uploads/"); ok {
				r.upload(w, req, repo, id)
				return
			}
			r.writeContent(w, req, digest.Digest(ref))
			return
		}
	}
	http.NotFound(w, req)
}

func (r *fakeRegistry) writeContent(w http.ResponseWriter, req *http.Request, d digest.Digest) {
	desc, ok := r.content[d]
	if !ok {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", desc.MediaType)
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", strconv.Itoa(len(r.data[d])))
	if req.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(r.data[d])
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

// put stores content and returns its descriptor.
func (r *fakeRegistry) put(mediaType string, b []byte) ocispec.Descriptor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.putLocked(mediaType, b)
}

func (r *fakeRegistry) putLocked(mediaType string, b []byte) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	r.content[d.Digest], r.data[d.Digest] = d, b
	return d
}

func (r *fakeRegistry) tag(repo, tag string, d digest.Digest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tags[repo+":"+tag] = d
}

// putImage stores a small image manifest tagged tag and returns its digest.
func (r *fakeRegistry) putImage(repo, tag, content string) digest.Digest {
	cfg := r.put(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","comment":`+jsonString(content)+`}`))
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{}})
	d := r.put(ocispec.MediaTypeImageManifest, m).Digest
	r.tag(repo, tag, d)
	return d
}

// classicLayer is one simple-signing layer: payload and its signature.
type classicLayer struct {
	payload, sig []byte
}

// putClassic writes the classic signature manifest of target with layers
// under its "sha256-<hex>.sig" tag, as cosign v2 does.
func (r *fakeRegistry) putClassic(repo string, target digest.Digest, layers ...classicLayer) {
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: r.put(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`))}
	for _, l := range layers {
		d := r.put(SimpleSigningMediaType, l.payload)
		d.Annotations = map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(l.sig)}
		m.Layers = append(m.Layers, d)
	}
	b, _ := json.Marshal(m)
	r.tag(repo, strings.Replace(target.String(), ":", "-", 1)+".sig", r.put(ocispec.MediaTypeImageManifest, b).Digest)
}

// putBundle stores a bundle referrer of subject, as cosign v3 does: listed
// by the referrers API, or else in the index under the "sha256-<hex>" tag.
func (r *fakeRegistry) putBundle(repo string, subject digest.Digest, bundleJSON []byte) {
	empty := r.put("application/vnd.oci.empty.v1+json", []byte("{}"))
	subj := r.content[subject]
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: BundleArtifactType, Config: empty, Subject: &subj,
		Layers: []ocispec.Descriptor{r.put(BundleArtifactType, bundleJSON)}}
	b, _ := json.Marshal(m)
	d := r.put(ocispec.MediaTypeImageManifest, b)
	d.ArtifactType = BundleArtifactType
	r.mu.Lock()
	key := repo + "@" + subject.String()
	r.referrers[key] = append(r.referrers[key], d)
	refs := r.referrers[key]
	r.mu.Unlock()
	if !r.referrersAPI {
		idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: refs})
		r.tag(repo, strings.Replace(subject.String(), ":", "-", 1), r.put(ocispec.MediaTypeImageIndex, idx).Digest)
	}
}

// upload speaks the blob upload protocol (POST, PATCH, PUT ?digest=) that
// clients such as cosign use to push; r.mu is held.
func (r *fakeRegistry) upload(w http.ResponseWriter, req *http.Request, repo, id string) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.Method == http.MethodPost {
		r.nextUpload++
		id = strconv.Itoa(r.nextUpload)
	} else if _, ok := r.uploads[id]; !ok {
		http.NotFound(w, req)
		return
	}
	r.uploads[id] = append(r.uploads[id], body...)
	want := digest.Digest(req.URL.Query().Get("digest"))
	if want == "" {
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
		w.Header().Set("Range", "0-"+strconv.Itoa(len(r.uploads[id])-1))
		w.WriteHeader(http.StatusAccepted)
		return
	}
	data := r.uploads[id]
	delete(r.uploads, id)
	if digest.FromBytes(data) != want {
		http.Error(w, "digest mismatch", http.StatusBadRequest)
		return
	}
	r.putLocked("application/octet-stream", data)
	w.Header().Set("Docker-Content-Digest", want.String())
	w.WriteHeader(http.StatusCreated)
}

// pushManifest stores a pushed manifest under its digest (and ref, when a
// tag); with the referrers API, one with a subject becomes a referrer and
// the answer carries OCI-Subject, so that clients skip the tag fallback.
func (r *fakeRegistry) pushManifest(w http.ResponseWriter, req *http.Request, repo, ref string) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	desc := r.putLocked(req.Header.Get("Content-Type"), body)
	if digest.Digest(ref).Validate() != nil {
		r.tags[repo+":"+ref] = desc.Digest
	}
	var m ocispec.Manifest
	if json.Unmarshal(body, &m) == nil && m.Subject != nil && r.referrersAPI {
		desc.ArtifactType, desc.Annotations = m.ArtifactType, m.Annotations
		if desc.ArtifactType == "" {
			desc.ArtifactType = m.Config.MediaType
		}
		key := repo + "@" + m.Subject.Digest.String()
		r.referrers[key] = append(r.referrers[key], desc)
		w.Header().Set("OCI-Subject", m.Subject.Digest.String())
	}
	w.Header().Set("Docker-Content-Digest", desc.Digest.String())
	w.WriteHeader(http.StatusCreated)
}
