package driver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// idmapStagingRoot holds, per containerd address, the directories where a
// start stages its idmapped binds (executor.StageIDMapped) while the
// container is created: <root>/<address hash>/<container id>.
const idmapStagingRoot = "/run/nomad-driver-containerd/idmap"

// staging keeps a sweep from releasing a start's staged binds while that
// start creates its container: starts hold it for reading from staging to
// release, a sweep for writing.
var staging struct {
	sync.RWMutex
	prepared map[string]bool // staging directories made private mounts
}

// stagingDir is the directory of the containers of containerd at address:
// another containerd (another plugin on the node) has its own.
func stagingDir(address string) string {
	sum := sha256.Sum256([]byte(address))
	return filepath.Join(idmapStagingRoot, hex.EncodeToString(sum[:8]))
}

// stageIDMapped makes the binds of a task in its own user namespace that
// are marked idmap (the allocation's directories, the network files,
// opt-in host binds) idmapped clones in the container's staging
// directory, and points the spec's mounts there. release, which the
// caller runs once the container is created or its creation failed,
// unmounts them: the container's binds of them stay.
func (d *Driver) stageIDMapped(st *state, p *plan) (release func(), err error) {
	if len(p.spec.UserNS) == 0 {
		return func() {}, nil
	}
	staging.RLock()
	dir := filepath.Join(stagingDir(st.config.Address), p.containerID)
	if err := stage(dir, p); err != nil {
		staging.RUnlock()
		return nil, err
	}
	return func() {
		defer staging.RUnlock()
		if err := executor.ReleaseStaged(dir); err != nil {
			d.logger.Error("failed to release the staged idmapped binds", "container_id", p.containerID, "error", err)
		}
	}, nil
}

// stage stages p's binds in dir, after what a start that died left there.
func stage(dir string, p *plan) error {
	if err := prepareStaging(idmapStagingRoot); err != nil {
		return err
	}
	if err := executor.ReleaseStaged(dir); err != nil {
		return err
	}
	return executor.StageIDMapped(dir, p.spec.Mounts, p.spec.UserNS)
}

var prepareMu sync.Mutex

// prepareStaging makes root a private mount once per plugin process (it
// stays one, as /run/netns does).
func prepareStaging(root string) error {
	prepareMu.Lock()
	defer prepareMu.Unlock()
	if staging.prepared[root] {
		return nil
	}
	if err := executor.PrepareStagingRoot(root); err != nil {
		return err
	}
	if staging.prepared == nil {
		staging.prepared = map[string]bool{}
	}
	staging.prepared[root] = true
	return nil
}

// sweepStaged releases the staged binds that no start of this plugin
// holds: those of a plugin that died while it created a container. While
// starts create containers it waits for a later pass rather than hold new
// starts back.
func (d *Driver) sweepStaged(st *state) {
	if !staging.TryLock() {
		return
	}
	defer staging.Unlock()
	root := stagingDir(st.config.Address)
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		d.logger.Warn("failed to read the idmap staging directory", "path", root, "error", err)
		return
	}
	for _, e := range entries {
		if d.tasks.Known(e.Name()) {
			continue
		}
		if err := executor.ReleaseStaged(filepath.Join(root, e.Name())); err != nil {
			d.logger.Warn("failed to release leftover staged idmapped binds", "container_id", e.Name(), "error", err)
			continue
		}
		d.logger.Info("released leftover staged idmapped binds", "container_id", e.Name())
	}
}
