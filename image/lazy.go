package image

import (
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/snapshotters"
)

// StargzSnapshotter is the snapshotter name under which a pull is lazy:
// containerd's proxy plugin for the stargz snapshotter.
const StargzSnapshotter = "stargz"

// lazy tells whether pulls leave the layers to a remote snapshotter, which
// mounts eStargz layers from the registry and fetches their files on
// demand.
func (m *Manager) lazy() bool { return m.cfg.Snapshotter == StargzSnapshotter }

// remoteLabels has every layer of the manifests h returns carry the
// remote-snapshotter labels for ref (containerd's CRI labels: the image
// reference, the layer digest and the image's layers), which containerd
// passes on when it prepares the layer's snapshot. The stargz snapshotter
// then mounts an eStargz layer from the registry, and containerd does not
// fetch it; a layer it cannot mount (not eStargz) it refuses, and
// containerd fetches and unpacks that layer as in a full pull.
func remoteLabels(ref string, h images.Handler) images.Handler {
	return snapshotters.AppendInfoHandlerWrapper(ref)(h)
}
