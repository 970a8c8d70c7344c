package image

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Info is what the driver records about the image a task ran.
type Info struct {
	Ref    string // the image name in the store
	Digest string // the digest of its target (manifest or index)
	Config ocispec.ImageConfig
}

// Describe reads the image config for the image's platform. ctx must carry
// the namespace unless the client has a default one.
func Describe(ctx context.Context, img client.Image) (Info, error) {
	spec, err := readConfig(ctx, img)
	if err != nil {
		return Info{}, err
	}
	return infoOf(img, spec), nil
}

// Describe is Describe for an image Ensure returned for a request with
// this platform, reading the config once per image digest: a start of an
// image started before asks containerd nothing more.
func (m *Manager) Describe(ctx context.Context, img client.Image, platform string) (Info, error) {
	key := img.Target().Digest.String() + "\x00" + platform
	spec, ok := m.configs.Get(key)
	if !ok {
		var err error
		if spec, err = readConfig(namespaces.WithNamespace(ctx, m.namespace), img); err != nil {
			return Info{}, err
		}
		m.configs.Add(key, spec)
	}
	return infoOf(img, spec), nil
}

func readConfig(ctx context.Context, img client.Image) (ocispec.Image, error) {
	spec, err := img.Spec(ctx)
	if err != nil {
		return ocispec.Image{}, fmt.Errorf("failed to read config of image %q: %w", img.Name(), err)
	}
	return spec, nil
}

func infoOf(img client.Image, spec ocispec.Image) Info {
	return Info{Ref: img.Name(), Digest: img.Target().Digest.String(), Config: spec.Config}
}
