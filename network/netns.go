package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}

// createNetNS makes a new network namespace and bind-mounts it on path (the
// file must not exist), like containerd's pkg/netns but at a name of our
// choosing. The setup functions run in it first (allowLowPorts,
// loopbackUp). On error nothing is left at path.
func createNetNS(path string, setup ...func() error) (err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("failed to create netns file: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("failed to create netns file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(path)
		}
	}()

	errc := make(chan error, 1)
	go func() {
		// The thread moves to the new namespace and is never unlocked: the
		// runtime ends it with the goroutine instead of reusing it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("failed to unshare the network namespace: %w", err)
			return
		}
		for _, fn := range setup {
			if err := fn(); err != nil {
				errc <- err
				return
			}
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("failed to bind-mount the network namespace on %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// allowLowPorts lets every process in the calling thread's network
// namespace bind ports below 1024 (net.ipv4.ip_unprivileged_port_start = 0,
// as docker sets it). /proc/sys/net is the namespace of the thread that
// opens it.
func allowLowPorts() error {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", []byte("0"), 0); err != nil {
		return fmt.Errorf("failed to open ports below 1024 in the network namespace: %w", err)
	}
	return nil
}

// loopbackUp sets the loopback interface of the calling thread's network
// namespace up.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("failed to set loopback up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err == nil {
		err = unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr)
	}
	if err == nil {
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		err = unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	}
	if err != nil {
		return fmt.Errorf("failed to set loopback up: %w", err)
	}
	return nil
}

// removeNetNS unmounts and removes the netns file at path. It is idempotent:
// a missing file or a file that is not mounted is fine.
func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("failed to unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed to remove netns %s: %w", path, err)
	}
	return nil
}

// checkNetNS reports whether path is a mounted network namespace; a missing
// one gives an error that matches fs.ErrNotExist.
func checkNetNS(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("netns %s is gone: %w", path, fs.ErrNotExist)
		}
		return fmt.Errorf("failed to stat netns %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("netns %s is not a mounted network namespace: %w", path, fs.ErrNotExist)
	}
	return nil
}
