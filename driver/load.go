package driver

import (
	"fmt"
	"os"
	"strings"

	"github.com/distribution/reference"
	"github.com/hashicorp/nomad/plugins/drivers"
	"golang.org/x/sys/unix"
)

// loadDomain is the registry part of the names loaded archives are stored
// under; .invalid never resolves, so nothing is ever pulled by such a name.
const loadDomain = "load.nomad.invalid"

// loadedName is the name an archive loaded for image ref is stored under:
// scoped to the allocation, so a load never changes what another task's
// reference resolves to, while the allocation's own restarts find it.
func loadedName(allocID, ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("failed to parse %q: %w", ref, err)
	}
	name := loadDomain + "/" + strings.ToLower(allocID) + "/" + strings.ReplaceAll(reference.Domain(named), ":", "-") + "/" + reference.Path(named)
	if t, ok := named.(reference.Tagged); ok {
		name += ":" + t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		name += "@" + d.Digest().String()
	}
	if _, err := reference.ParseNormalizedNamed(name); err != nil {
		return "", fmt.Errorf("failed to name the loaded image %q: %w", ref, err)
	}
	return name, nil
}

// loadArchive is a `load` archive held open from its check until the
// image store has read it: the loader reads the checked file through its
// descriptor, never a path that could be swapped in between.
type loadArchive struct {
	file *os.File
}

// openLoad opens `load` in the task directory, following symlinks as the
// kernel does, and refuses what it reached when that lies outside the
// allocation directory.
func openLoad(cfg *drivers.TaskConfig, load string) (*loadArchive, error) {
	if load == "" {
		return nil, nil
	}
	b, err := newAllocBoundary(cfg.AllocDir, cfg.TaskDir().Dir)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(joinTaskDir(cfg, load), os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("load: %q cannot be opened in the task directory: %w", load, err)
	}
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to read the path of load %q: %w", load, err)
	}
	if !b.contains(real) {
		f.Close()
		return nil, fmt.Errorf("load: %q resolves to %q, outside the allocation directory", load, real)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("load: %q (resolved to %q) is not a regular file: refused", load, real)
	}
	return &loadArchive{file: f}, nil
}

// path is the name the image loader opens: this descriptor's own.
func (a *loadArchive) path() string {
	if a == nil {
		return ""
	}
	return fmt.Sprintf("/proc/self/fd/%d", a.file.Fd())
}

func (a *loadArchive) close() {
	if a != nil {
		_ = a.file.Close()
	}
}

func joinTaskDir(cfg *drivers.TaskConfig, p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return cfg.TaskDir().Dir + "/" + p
}
