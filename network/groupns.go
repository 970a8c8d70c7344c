package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// GroupNetNSPath is where the network namespace of allocation allocID's
// group lives: <netns_dir>/<alloc id>, the name Nomad's own group
// namespaces have, so that `ip netns` shows it by the allocation ID. The
// ID must be a file name of letters, digits, '_', '.' and '-'.
func (m *Manager) GroupNetNSPath(allocID string) (string, error) {
	if allocID == "" || len(allocID) > maxIDLen || !ifNameRe.MatchString(allocID) {
		return "", fmt.Errorf("alloc id %q: want letters, digits, '_', '.' and '-', starting with a letter or digit, at most %d bytes (a Nomad allocation ID)", allocID, maxIDLen)
	}
	return filepath.Join(m.cfg.NetNSDir, allocID), nil
}

// CreateGroupNetNS makes the network namespace of allocation allocID's
// group at GroupNetNSPath, lets every process in it bind ports below 1024
// (see Request.AnyPortBinds) and sets its loopback up. A namespace already
// mounted there (Nomad asks again when its client restarts) is kept, gets
// the same settings and is returned with created false. A file there that
// is no mounted namespace, left by a crash, is replaced. On error nothing
// new is left.
func (m *Manager) CreateGroupNetNS(allocID string) (path string, created bool, err error) {
	path, err = m.GroupNetNSPath(allocID)
	if err != nil {
		return "", false, err
	}
	m.groupMu.Lock()
	defer m.groupMu.Unlock()
	switch err := checkNetNS(path); {
	case err == nil:
		if err := inNetNS(path, prepareGroupNetNS); err != nil {
			return "", false, err
		}
		return path, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, err
	}
	if err := removeNetNS(path); err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(m.cfg.NetNSDir, 0o755); err != nil {
		return "", false, fmt.Errorf("failed to create netns dir: %w", err)
	}
	if err := createNetNS(path, prepareGroupNetNS); err != nil {
		return "", false, err
	}
	m.logger.Debug("group network namespace created", "alloc_id", allocID, "netns", path)
	return path, true, nil
}

// prepareGroupNetNS opens ports below 1024 and sets loopback up in the
// calling thread's network namespace: a group in network mode "none" gets
// no CNI run that would set it up.
func prepareGroupNetNS() error {
	if err := allowLowPorts(); err != nil {
		return err
	}
	return loopbackUp()
}

// RemoveGroupNetNS unmounts and removes the network namespace of
// allocation allocID's group. It is idempotent.
func (m *Manager) RemoveGroupNetNS(allocID string) error {
	path, err := m.GroupNetNSPath(allocID)
	if err != nil {
		return err
	}
	m.groupMu.Lock()
	defer m.groupMu.Unlock()
	if err := removeNetNS(path); err != nil {
		return err
	}
	m.logger.Debug("group network namespace removed", "alloc_id", allocID, "netns", path)
	return nil
}

// inNetNS runs fn on a thread that has joined the network namespace at
// path.
func inNetNS(path string, fn func() error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("failed to open netns %s: %w", path, err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		// never unlocked: the thread ends with the goroutine
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("failed to enter netns %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
