package driver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// idmapStagingRoot holds the directories where a start stages its
// idmapped binds (executor.StageIDMapped) while the container is created:
// <root>/<containerd address hash>-<container id>, each a mount of its own
// only while it holds them.
const idmapStagingRoot = "/run/nomad-driver-containerd/idmap"

// staging keeps a sweep from releasing a start's staged binds while that
// start creates its container: starts hold it for reading from staging to
// release, a sweep for writing.
var staging sync.RWMutex

// stagingPrefix is the path prefix of the staging directories of the
// containers of containerd at address: another containerd (another plugin
// on the node) has its own.
func stagingPrefix(address string) string {
	sum := sha256.Sum256([]byte(address))
	return filepath.Join(idmapStagingRoot, hex.EncodeToString(sum[:8])) + "-"
}

// stageIDMapped makes the binds of a task in its own user namespace that
// are marked idmap (the allocation's directories, the network files,
// opt-in host binds) idmapped clones in the container's staging
// directory, and points the spec's mounts there. The spec is rewritten
// before it returns; the mounts are made in the background, while the
// container record is created: wait returns once they are (runc needs
// them when the task is created). The create stages the root
// filesystem's layers in s too. release, which the caller runs once the
// container is created or its creation failed, unmounts them: the
// container's binds of them stay. s is nil for a task in the host's user
// namespace.
func (d *Driver) stageIDMapped(st *state, p *plan) (s *executor.Staging, wait func() error, release func()) {
	if len(p.spec.UserNS) == 0 {
		return nil, func() error { return nil }, func() {}
	}
	staging.RLock()
	dir := stagingPrefix(st.config.Address) + p.containerID
	s = executor.PlanIDMapped(dir, p.spec.Mounts, p.spec.UserNS)
	done := make(chan error, 1)
	go func() { done <- stage(dir, s) }()
	var once sync.Once
	var err error
	wait = func() error {
		once.Do(func() { err = <-done })
		return err
	}
	return s, wait, func() {
		defer staging.RUnlock()
		_ = wait()
		s.Close()
		if err := executor.ReleaseStaged(dir); err != nil {
			d.logger.Error("failed to release the staged idmapped binds", "container_id", p.containerID, "error", err)
		}
	}
}

// stage stages s in dir, after what a start that died left there.
func stage(dir string, s *executor.Staging) error {
	if err := executor.ReleaseStaged(dir); err != nil {
		return err
	}
	return s.Stage()
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
	prefix := stagingPrefix(st.config.Address)
	entries, err := os.ReadDir(idmapStagingRoot)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		d.logger.Warn("failed to read the idmap staging directory", "path", idmapStagingRoot, "error", err)
		return
	}
	for _, e := range entries {
		id, ours := strings.CutPrefix(filepath.Join(idmapStagingRoot, e.Name()), prefix)
		if !ours || d.tasks.Known(id) {
			continue
		}
		if err := executor.ReleaseStaged(prefix + id); err != nil {
			d.logger.Warn("failed to release leftover staged idmapped binds", "container_id", id, "error", err)
			continue
		}
		d.logger.Info("released leftover staged idmapped binds", "container_id", id)
	}
}
