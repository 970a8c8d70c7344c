//go:build integration

package image_test

import (
	"github.com/containerd/containerd/v2/client"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
)

// imageOf is the image of an Ensure's result.
func imageOf(e image.Ensured, err error) (client.Image, error) {
	return e.Image, err
}
