package testbed

import (
	"bytes"
	"fmt"
	"io"
	"strconv"

	"github.com/containerd/stargz-snapshotter/estargz"
)

// EStargzLayer is l converted to eStargz (github.com/containerd/stargz-
// snapshotter/estargz): the same files in a seekable gzip with a table of
// contents at its end, whose digest the layer's annotations carry, so that a
// stargz snapshotter mounts it and fetches files on demand. Files named in
// prioritized come first in the blob (the landmark for prefetch). Any gzip
// reader still reads it as the plain layer it was.
func EStargzLayer(l Layer, prioritized ...string) (Layer, error) {
	raw, err := l.Tar()
	if err != nil {
		return Layer{}, err
	}
	var opts []estargz.Option
	if len(prioritized) > 0 {
		opts = append(opts, estargz.WithPrioritizedFiles(prioritized))
	}
	blob, err := estargz.Build(io.NewSectionReader(bytes.NewReader(raw), 0, int64(len(raw))), opts...)
	if err != nil {
		return Layer{}, fmt.Errorf("failed to convert layer %s to eStargz: %w", l.DiffID, err)
	}
	defer blob.Close()
	data, err := io.ReadAll(blob)
	if err != nil {
		return Layer{}, fmt.Errorf("failed to convert layer %s to eStargz: %w", l.DiffID, err)
	}
	return Layer{
		Blob:   data,
		DiffID: blob.DiffID(),
		Annotations: map[string]string{
			estargz.TOCJSONDigestAnnotation:         blob.TOCDigest().String(),
			estargz.StoreUncompressedSizeAnnotation: strconv.Itoa(len(raw)),
		},
	}, nil
}

// BuildEStargzBusybox is BuildBusybox with its layer in eStargz, plus a
// layer of one file of size pseudo-random bytes at /filler/big (for tests
// that read a little of a large image), also in eStargz when size > 0.
func BuildEStargzBusybox(size int) (*Image, error) {
	img, err := BuildBusybox()
	if err != nil {
		return nil, err
	}
	layers := img.Layers()
	if size > 0 {
		filler, err := FillerLayer("big", size, 19)
		if err != nil {
			return nil, err
		}
		layers = append(layers, filler)
	}
	for i, l := range layers {
		if layers[i], err = EStargzLayer(l); err != nil {
			return nil, err
		}
	}
	return BuildImage(img.Config.Config, layers...)
}
