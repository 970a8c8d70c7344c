package executor

import (
	"context"
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// processArgs applies docker's entrypoint/cmd rules.
func processArgs(img ocispec.ImageConfig, cfg SpecConfig) []string {
	entrypoint := img.Entrypoint
	command := img.Cmd
	if cfg.Entrypoint != nil {
		entrypoint = cfg.Entrypoint
		command = nil
	}
	if cfg.Command != nil {
		command = cfg.Command
	}
	args := make([]string, 0, len(entrypoint)+len(command))
	args = append(args, entrypoint...)
	return append(args, command...)
}

// workingDir is the task's or else the image's working directory. One
// under /proc is refused: runc's CVE-2024-21626 let a working directory of
// /proc/self/fd/<n> reach a host directory through a leaked descriptor, and
// no real task needs to start in /proc.
func workingDir(img ocispec.ImageConfig, cfg SpecConfig) (string, error) {
	if cfg.Cwd != "" {
		if !path.IsAbs(cfg.Cwd) {
			return "", fmt.Errorf("working directory %q is not an absolute path", cfg.Cwd)
		}
		if UnderProc(cfg.Cwd) {
			return "", fmt.Errorf("working directory %q is refused: it is under /proc", cfg.Cwd)
		}
		return path.Clean(cfg.Cwd), nil
	}
	if img.WorkingDir != "" {
		if UnderProc(path.Join("/", img.WorkingDir)) {
			return "", fmt.Errorf("image config WorkingDir %q is refused: it is under /proc", img.WorkingDir)
		}
		return path.Join("/", img.WorkingDir), nil
	}
	return "/", nil
}

// mergeEnv overlays the task's variables on the image's, keeping the image's
// order, appending new names in sorted order, and adding a default PATH when
// neither sets one.
func mergeEnv(image []string, task map[string]string) []string {
	env := make([]string, 0, len(image)+len(task)+1)
	index := make(map[string]int, len(image))
	for _, kv := range image {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			env[i] = kv
			continue
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	keys := make([]string, 0, len(task))
	for k := range task {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv := k + "=" + task[k]
		if i, ok := index[k]; ok {
			env[i] = kv
			continue
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	if _, ok := index["PATH"]; !ok {
		env = append(env, defaultPathEnv)
	}
	return env
}

func withEnv(env []string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.Env = env
		return nil
	}
}

func effectiveUser(img ocispec.ImageConfig, cfg SpecConfig) string {
	if cfg.User != "" {
		return cfg.User
	}
	return img.User
}

// parseNumericUser parses "uid" and "uid:gid". numeric is false (and err nil)
// when either part is a name, which must be resolved in the root filesystem.
func parseNumericUser(user string) (uid, gid uint32, numeric bool, err error) {
	parts := strings.Split(user, ":")
	if len(parts) > 2 || parts[0] == "" || (len(parts) == 2 && parts[1] == "") {
		return 0, 0, false, fmt.Errorf("invalid user %q: want user, uid, user:group or uid:gid", user)
	}
	ids := make([]uint32, 2)
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			if isDigits(p) {
				return 0, 0, false, fmt.Errorf("invalid user %q: id %s out of range", user, p)
			}
			return 0, 0, false, nil
		}
		if n > math.MaxInt32 {
			return 0, 0, false, fmt.Errorf("invalid user %q: id %s out of range", user, p)
		}
		ids[i] = uint32(n)
	}
	return ids[0], ids[1], true, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// namedUserOpts resolves a user given with names against the container's root
// filesystem, with the user's supplementary groups from /etc/group. They need
// a client and the container's snapshot, so only Create applies them.
func namedUserOpts(img ocispec.ImageConfig, cfg SpecConfig) []oci.SpecOpts {
	user := effectiveUser(img, cfg)
	if user == "" {
		return nil
	}
	if _, _, numeric, err := parseNumericUser(user); err != nil || numeric {
		return nil
	}
	opts := []oci.SpecOpts{oci.WithUser(user)}
	if name, _, _ := strings.Cut(user, ":"); !isDigits(name) {
		opts = append(opts, oci.WithAdditionalGIDs(name))
	}
	return opts
}
