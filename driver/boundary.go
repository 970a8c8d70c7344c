package driver

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// The allocation boundary: what a task's binds may reach inside its own
// allocation directory, and where in the container they may land. These
// rules are the only place that decides it; every bind form (volumes,
// mount/mounts, bind, bind_read_only) goes through them, always on
// resolved paths: sources as the kernel reached them through every
// symlink (see pins), targets after resolving inside the image's root
// filesystem (see executor.SpecConfig.CheckTarget).
//
// Sources. Inside the allocation directory a bind may reach
//   - the task's own directory (local/, secrets/, tmp/ and the rest of it);
//   - alloc/data and alloc/tmp, which every task of the allocation already
//     has read-write at /alloc/data and /alloc/tmp: a bind of them gives
//     nothing new;
//   - alloc/logs only read-only: Nomad's logmon runs as root and opens
//     <task>.stdout.N there following symlinks, so a writable alloc/logs
//     turns a task's output into root writes to any host file.
//
// Never the allocation root, the shared alloc/ directory itself (it holds
// logs/), or another task's directory (its secrets/).
//
// Targets. A bind may not land on /, on /alloc, /local or /secrets, on
// /alloc/logs or below it, or on any directory above them: each would cover
// a directory Nomad mounts. Beneath /alloc (but not logs), /local and
// /secrets binds are allowed.

// Container paths of Nomad's task directories.
const (
	allocMountPath   = "/alloc"
	localMountPath   = "/local"
	secretsMountPath = "/secrets"
	logsMountPath    = "/alloc/logs"
)

// allocBoundary is one task's view of its allocation directory, resolved.
type allocBoundary struct {
	alloc  string // the allocation directory
	task   string // the task's own directory
	shared string // alloc/, shared by the allocation's tasks
}

func newAllocBoundary(allocDir, taskDir string) (allocBoundary, error) {
	alloc, err := filepath.EvalSymlinks(allocDir)
	if err != nil {
		return allocBoundary{}, fmt.Errorf("failed to resolve the allocation directory: %w", err)
	}
	task, err := filepath.EvalSymlinks(taskDir)
	if err != nil {
		return allocBoundary{}, fmt.Errorf("failed to resolve the task directory: %w", err)
	}
	return allocBoundary{alloc: alloc, task: task, shared: filepath.Join(alloc, "alloc")}, nil
}

// contains reports whether real is inside the allocation directory; only
// such sources are judged by checkSource, the rest are host paths.
func (b allocBoundary) contains(real string) bool { return isUnder(real, b.alloc) }

// checkSource judges a bind source inside the allocation: given is the
// source as the task wrote it in option field, real is where the kernel
// resolved it.
func (b allocBoundary) checkSource(field, given, real string, readOnly bool) error {
	switch {
	case isUnder(real, b.task):
		return nil
	case isUnder(real, filepath.Join(b.shared, "data")), isUnder(real, filepath.Join(b.shared, "tmp")):
		return nil
	case isUnder(real, filepath.Join(b.shared, "logs")):
		if readOnly {
			return nil
		}
		return fmt.Errorf("%s: source %q (resolved to %q) is refused: alloc/logs may only be bound read-only, a task may plant nothing where Nomad writes logs", field, given, real)
	}
	rel, _ := filepath.Rel(b.alloc, real)
	what := "another task's directory"
	switch {
	case rel == ".":
		what = "the allocation directory itself"
	case rel == "alloc":
		what = "the shared alloc directory, which holds alloc/logs"
	case strings.HasPrefix(rel, "alloc/"):
		what = "a part of the shared alloc directory other than data, tmp and logs"
	}
	return fmt.Errorf("%s: source %q (resolved to %q) is refused: it is %s; a bind inside the allocation may reach only the task's own directory, alloc/data, alloc/tmp and (read-only) alloc/logs", field, given, real, what)
}

// nomadDirs are the container directories Nomad mounts, that no bind may
// land on or above.
var nomadDirs = []string{logsMountPath, allocMountPath, localMountPath, secretsMountPath}

// checkTarget refuses a bind target that would cover a directory Nomad
// mounts. target is the path given; resolved is where it lands (the same
// path before resolving).
func checkTarget(field, target, resolved string) error {
	t := path.Clean(resolved)
	via := ""
	if t != path.Clean(target) {
		via = fmt.Sprintf(" (the image resolves it to %q)", t)
	}
	if executor.UnderProc(t) {
		return fmt.Errorf("%s: target %q%s is refused: it is under /proc, whose masked and read-only paths must stay", field, target, via)
	}
	for _, d := range nomadDirs {
		covers := t == "/" || t == d || strings.HasPrefix(d, t+"/")
		if d == logsMountPath && (covers || strings.HasPrefix(t, d+"/")) {
			return fmt.Errorf("%s: target %q%s is refused: it would cover %s, which stays read-only", field, target, via, d)
		}
		if covers {
			return fmt.Errorf("%s: target %q%s is refused: it would cover %s, which Nomad mounts", field, target, via, d)
		}
	}
	return nil
}
