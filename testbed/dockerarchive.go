package testbed

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// DockerArchive is img as `docker save` writes it (manifest.json, the
// config, one uncompressed layer.tar per layer), tagged repoTag: what
// `docker load` of Docker 20.10 reads (it reads no OCI layout).
func (img *Image) DockerArchive(repoTag string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: Epoch, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	config := img.Manifest.Config.Digest.Encoded() + ".json"
	if err := add(config, img.Blobs[img.Manifest.Config.Digest]); err != nil {
		return nil, err
	}
	var layers []string
	for _, l := range img.Layers() {
		raw, err := l.Tar()
		if err != nil {
			return nil, err
		}
		name := l.DiffID.Encoded() + "/layer.tar"
		if err := add(name, raw); err != nil {
			return nil, err
		}
		layers = append(layers, name)
	}
	manifest, err := json.Marshal([]map[string]any{{"Config": config, "RepoTags": []string{repoTag}, "Layers": layers}})
	if err != nil {
		return nil, err
	}
	if err := add("manifest.json", manifest); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Load loads img into the daemon as repoTag (`docker load`), from no
// registry.
func (d *Dockerd) Load(ctx context.Context, img *Image, repoTag string) error {
	archive, err := img.DockerArchive(repoTag)
	if err != nil {
		return fmt.Errorf("failed to build docker archive: %w", err)
	}
	if err := d.call(ctx, http.MethodPost, "/images/load?quiet=1", bytes.NewReader(archive)); err != nil {
		return fmt.Errorf("failed to load %s into docker: %w", repoTag, err)
	}
	return d.call(ctx, http.MethodGet, "/images/"+repoTag+"/json", nil)
}
