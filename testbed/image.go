package testbed

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	mathrand "math/rand"
	"os"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Epoch is the fixed time stamped on everything the builders make, so that
// digests are stable.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one file system entry of a layer.
type Entry struct {
	Name     string      // path inside the image, no leading slash
	Mode     fs.FileMode // permission bits plus fs.ModeDir / fs.ModeSymlink; 0 means 0644 file
	Data     []byte      // file content
	Link     string      // symlink target
	UID, GID int
}

// Dir, File and Symlink make entries.
func Dir(name string, perm fs.FileMode) Entry { return Entry{Name: name, Mode: fs.ModeDir | perm} }
func File(name string, perm fs.FileMode, data []byte) Entry {
	return Entry{Name: name, Mode: perm, Data: data}
}
func Symlink(name, target string) Entry {
	return Entry{Name: name, Mode: fs.ModeSymlink | 0o777, Link: target}
}

// Image is an OCI image held in memory: its manifest and every blob it
// references (config and layers), by digest.
type Image struct {
	Manifest      ocispec.Manifest
	ManifestBytes []byte
	Config        ocispec.Image
	Blobs         map[digest.Digest][]byte
}

// Digest is the manifest digest.
func (img *Image) Digest() digest.Digest { return digest.FromBytes(img.ManifestBytes) }

// Descriptor describes the manifest.
func (img *Image) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest,
		Digest:    img.Digest(),
		Size:      int64(len(img.ManifestBytes)),
	}
}

// Layer is a gzip-compressed tar layer.
type Layer struct {
	Blob   []byte
	DiffID digest.Digest // digest of the uncompressed tar
	// Annotations go on the layer's descriptor in the manifest (an
	// eStargz layer's TOC digest).
	Annotations map[string]string
}

// Tar is the layer's uncompressed tar.
func (l Layer) Tar() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(l.Blob))
	if err != nil {
		return nil, fmt.Errorf("failed to read layer %s: %w", l.DiffID, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("failed to read layer %s: %w", l.DiffID, err)
	}
	return raw, nil
}

// NewLayer builds a deterministic layer (fixed mtimes, sorted entries,
// no owner names) from entries.
func NewLayer(entries ...Entry) (Layer, error) {
	sorted := append([]Entry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	tes := make([]tarEntry, 0, len(sorted))
	for _, e := range sorted {
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.Name, "/"),
			Uid:     e.UID,
			Gid:     e.GID,
			ModTime: Epoch,
			Format:  tar.FormatPAX,
		}
		perm := int64(e.Mode.Perm())
		if e.Mode&fs.ModeSetuid != 0 {
			perm |= 0o4000
		}
		if e.Mode&fs.ModeSetgid != 0 {
			perm |= 0o2000
		}
		if e.Mode&fs.ModeSticky != 0 {
			perm |= 0o1000
		}
		switch {
		case e.Mode&fs.ModeDir != 0:
			h.Typeflag, h.Name = tar.TypeDir, strings.TrimSuffix(h.Name, "/")+"/"
		case e.Mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Link
		default:
			if perm == 0 {
				perm = 0o644
			}
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Data))
		}
		h.Mode = perm
		tes = append(tes, tarEntry{name: e.Name, h: h, data: e.Data})
	}
	return tarLayer(tes)
}

// tarEntry is a tar header, the data of a regular file, and the name an
// error gives for the entry.
type tarEntry struct {
	name string
	h    *tar.Header
	data []byte
}

// tarLayer writes entries, in order, into a tar and makes it a layer.
func tarLayer(entries []tarEntry) (Layer, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		if err := tw.WriteHeader(e.h); err != nil {
			return Layer{}, fmt.Errorf("layer entry %s: %w", e.name, err)
		}
		if e.h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return Layer{}, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return Layer{}, err
	}
	return gzipLayer(raw.Bytes())
}

// gzipLayer compresses an uncompressed tar into a layer.
func gzipLayer(raw []byte) (Layer, error) {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return Layer{}, err
	}
	if err := zw.Close(); err != nil {
		return Layer{}, err
	}
	return Layer{Blob: gz.Bytes(), DiffID: digest.FromBytes(raw)}, nil
}

// BuildImage assembles an image for this machine's platform from cfg and
// layers (bottom first).
func BuildImage(cfg ocispec.ImageConfig, layers ...Layer) (*Image, error) {
	created := Epoch
	img := &Image{
		Blobs: map[digest.Digest][]byte{},
		Config: ocispec.Image{
			Created:  &created,
			Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
			Config:   cfg,
			RootFS:   ocispec.RootFS{Type: "layers"},
		},
	}
	img.Manifest = ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
	}
	for _, l := range layers {
		img.Config.RootFS.DiffIDs = append(img.Config.RootFS.DiffIDs, l.DiffID)
		img.Config.History = append(img.Config.History, ocispec.History{Created: &created, CreatedBy: "testbed"})
		desc := img.addBlob(ocispec.MediaTypeImageLayerGzip, l.Blob)
		desc.Annotations = l.Annotations
		img.Manifest.Layers = append(img.Manifest.Layers, desc)
	}
	cb, err := json.Marshal(img.Config)
	if err != nil {
		return nil, err
	}
	img.Manifest.Config = img.addBlob(ocispec.MediaTypeImageConfig, cb)
	if img.ManifestBytes, err = json.Marshal(img.Manifest); err != nil {
		return nil, err
	}
	return img, nil
}

func (img *Image) addBlob(mediaType string, b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	img.Blobs[d] = b
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// Layers are the image's layers, bottom first.
func (img *Image) Layers() []Layer {
	var out []Layer
	for i, d := range img.Manifest.Layers {
		out = append(out, Layer{Blob: img.Blobs[d.Digest], DiffID: img.Config.RootFS.DiffIDs[i], Annotations: d.Annotations})
	}
	return out
}

// Derive is a new image with extra layers on top of img and its config
// changed by edit (which may be nil).
func (img *Image) Derive(edit func(*ocispec.ImageConfig), layers ...Layer) (*Image, error) {
	cfg := img.Config.Config
	cfg.Env = append([]string(nil), cfg.Env...)
	cfg.Cmd = append([]string(nil), cfg.Cmd...)
	if edit != nil {
		edit(&cfg)
	}
	return BuildImage(cfg, append(img.Layers(), layers...)...)
}

// DefaultPath is the PATH in the images built here.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BusyboxBinary is the static busybox the images are made from.
func BusyboxBinary() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if f, err := elf.Open(p); err == nil {
			static := true
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					static = false
				}
			}
			f.Close()
			if static {
				return p, nil
			}
			return "", fmt.Errorf("%s is dynamically linked: install busybox-static (`make deps`)", p)
		}
	}
	return "", fmt.Errorf("no busybox found: install busybox-static (`make deps`)")
}

// BusyboxEntries is the busybox file system: /bin/busybox with a symlink per
// applet, /etc/passwd and /etc/group (root, nobody 65534, app 1000), /tmp,
// /root and /home/app.
func BusyboxEntries() ([]Entry, error) {
	bb, err := BusyboxBinary()
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", bb, err)
	}
	entries := []Entry{
		Dir("bin", 0o755),
		File("bin/busybox", 0o755, bin),
		Dir("etc", 0o755),
		File("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"+
			"app:x:1000:1000:app:/home/app:/bin/sh\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")),
		File("etc/group", 0o644, []byte("root:x:0:\napp:x:1000:\nnogroup:x:65534:\n")),
		Dir("home", 0o755),
		{Name: "home/app", Mode: fs.ModeDir | 0o755, UID: 1000, GID: 1000},
		Dir("root", 0o700),
		Dir("tmp", 0o777|fs.ModeSticky),
		Dir("usr", 0o755),
		Dir("usr/bin", 0o755),
		Dir("var", 0o755),
		Dir("var/www", 0o755),
	}
	for _, name := range strings.Fields(string(out)) {
		if name == "busybox" || strings.Contains(name, "/") {
			continue
		}
		entries = append(entries, Symlink(path.Join("bin", name), "busybox"))
	}
	return entries, nil
}

// BuildBusybox is the busybox image: one layer of BusyboxEntries, Cmd ["sh"]
// and PATH set. Its digest is the same on every call with the same busybox.
func BuildBusybox() (*Image, error) {
	entries, err := BusyboxEntries()
	if err != nil {
		return nil, err
	}
	layer, err := NewLayer(entries...)
	if err != nil {
		return nil, err
	}
	return BuildImage(ocispec.ImageConfig{
		Env: []string{"PATH=" + DefaultPath},
		Cmd: []string{"sh"},
	}, layer)
}

// BusyboxWith is the busybox image with one more layer: the given
// layer, or one holding entries when layer is nil. Its digest differs from
// BuildBusybox's, so that a test pulls it even where busybox is present.
func BusyboxWith(layer *Layer, entries ...Entry) (*Image, error) {
	bb, err := BuildBusybox()
	if err != nil {
		return nil, err
	}
	if layer == nil {
		l, err := NewLayer(entries...)
		if err != nil {
			return nil, err
		}
		layer = &l
	}
	return bb.Derive(nil, *layer)
}

// FillerLayer is a layer holding one file of size pseudo-random bytes
// (incompressible, the same for the same seed), for pull tests that need
// layers of a given size.
func FillerLayer(name string, size int, seed int64) (Layer, error) {
	return NewLayer(Dir("filler", 0o755), File(path.Join("filler", name), 0o644, FillerBytes(size, seed)))
}

// FillerBytes are size pseudo-random bytes, the same for the same seed.
func FillerBytes(size int, seed int64) []byte {
	data := make([]byte, size)
	rng := mathrand.New(mathrand.NewSource(seed))
	_, _ = rng.Read(data)
	return data
}
