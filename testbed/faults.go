package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var builds sync.Map // package path -> *buildResult

type buildResult struct {
	once sync.Once
	data []byte
	err  error
}

// goBuild builds the command at pkg (relative to the repository root)
// statically, once per process, and returns the binary's bytes.
func goBuild(pkg string) ([]byte, error) {
	v, _ := builds.LoadOrStore(pkg, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "ndc-build-")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("failed to build %s: %v: %s", pkg, err, o)
			return
		}
		b.data, b.err = os.ReadFile(out)
	})
	return b.data, b.err
}

// FaultCNIPlugin installs ndc-cni-fault (testbed/cmd/ndc-cni-fault) in a
// new bin dir of the test and returns the dir. In a conflist, after the
// plugins that make the interface:
//
//	{"type": "ndc-cni-fault", "failAdd": "/path/a", "failDel": "/path/d", "addDelay": "/path/s"}
//
// fails ADD while /path/a exists and DEL while /path/d exists; while
// /path/s exists, ADD first sleeps for the Go duration it holds.
func FaultCNIPlugin(t testing.TB) string {
	t.Helper()
	bin, err := goBuild("./testbed/cmd/ndc-cni-fault")
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ndc-cni-fault"), bin, 0o755); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return dir
}

// Kill SIGKILLs the registry (by its PID) and waits for it to exit; its
// storage stays, for Restart.
func (r *Registry) Kill() {
	r.proc.stop(syscall.SIGKILL, 0)
}

// Restart starts the registry again on the same address with the same
// storage, after Kill, and waits until it answers.
func (r *Registry) Restart() error {
	if !r.proc.exited() {
		return fmt.Errorf("registry (pid %d) is still running", r.PID)
	}
	bin, err := LookBin("docker-registry")
	if err != nil {
		return err
	}
	if r.proc, err = (LaunchOptions{}).start(r.Dir, "registry", cleanEnv(), bin, "serve", filepath.Join(r.Dir, "config.yml")); err != nil {
		return err
	}
	r.PID = r.proc.pid()
	if err := r.waitReady(15 * time.Second); err != nil {
		return fmt.Errorf("registry did not come back: %w\n%s", err, r.proc.logTail(2048))
	}
	return nil
}

// LoopFS makes an ext4 filesystem of sizeMiB in a file of the test, attaches
// it to a loop device and mounts it on dir (created if missing). At the end
// of the test it unmounts dir (if still mounted) and detaches that very
// device.
func LoopFS(t testing.TB, dir string, sizeMiB int) {
	t.Helper()
	Require(t, true, "losetup", "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "fs.img")
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(int64(sizeMiB) << 20)
		f.Close()
	}
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	run := func(name string, args ...string) string {
		bin, _ := LookBin(name)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("testbed: %s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// no reserved blocks and no journal: the space the test plans with is
	// the space there is
	run("mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", img)
	dev := run("losetup", "--find", "--show", img)
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			t.Errorf("testbed: unmount %s: %v", dir, err)
		}
		bin, _ := LookBin("losetup")
		if out, err := exec.Command(bin, "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("testbed: losetup -d %s: %v: %s", dev, err, out)
		}
	})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	if err := unix.Mount(dev, dir, "ext4", 0, ""); err != nil {
		t.Fatalf("testbed: mount %s on %s: %v", dev, dir, err)
	}
}

// FreeBytes is the space left for root on the filesystem holding path.
func FreeBytes(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bfree) * st.Bsize, nil
}
