package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// tool is a program hack/deps.sh builds for the test bed, checked the way it
// is built: the same packages, build tags and cgo setting.
type tool struct {
	name       string   // as deps.sh names it
	versionVar string   // the hack/versions.env variable holding its version
	module     string   // the module it comes from
	dir        string   // wrapper module it is built in (relative to the repository), if any
	pkgs       []string // the packages built
	tags       string   // build tags
	cgo        bool     // whether it is built with cgo
}

// testBed mirrors hack/deps.sh (tools_test.go holds the two together).
var testBed = []tool{
	{
		name: "containerd", versionVar: "CONTAINERD_VERSION", tags: "no_cri no_btrfs no_devmapper no_zfs no_tracing",
		module: "github.com/containerd/containerd/v2",
		pkgs: under("github.com/containerd/containerd/v2/cmd",
			"containerd", "containerd-shim-runc-v2", "ctr"),
	},
	{
		name: "cni", versionVar: "CNI_PLUGINS_VERSION",
		module: "github.com/containernetworking/plugins",
		pkgs: under("github.com/containernetworking/plugins/plugins",
			"main/bridge", "main/loopback", "main/macvlan", "main/ptp", "main/host-device",
			"main/vlan", "ipam/host-local", "ipam/static", "meta/portmap", "meta/firewall",
			"meta/tuning", "meta/bandwidth"),
	},
	{
		name: "cosign", versionVar: "COSIGN_VERSION",
		module: "github.com/sigstore/cosign/v3",
		pkgs:   []string{"github.com/sigstore/cosign/v3/cmd/cosign"},
	},
	{
		name: "cosign2", versionVar: "COSIGN_V2_VERSION",
		module: "github.com/sigstore/cosign/v2",
		pkgs:   []string{"github.com/sigstore/cosign/v2/cmd/cosign"},
	},
	{
		name: "runc", versionVar: "RUNC_VERSION", cgo: true, tags: "seccomp urfave_cli_no_docs",
		module: "github.com/opencontainers/runc",
		pkgs:   []string{"github.com/opencontainers/runc"},
	},
	{
		name: "nomad", versionVar: "NOMAD_VERSION", cgo: true,
		module: "github.com/hashicorp/nomad", dir: "hack/tools/nomad",
		pkgs: []string{"github.com/hashicorp/nomad"},
	},
	{
		name: "stargz", versionVar: "STARGZ_VERSION",
		module: "github.com/containerd/stargz-snapshotter", dir: "hack/tools/stargz",
		pkgs: []string{"nomad-driver-containerd/hack/tools/stargz"},
	},
}

func under(prefix string, subs ...string) []string {
	pkgs := make([]string, len(subs))
	for i, s := range subs {
		pkgs[i] = prefix + "/" + s
	}
	return pkgs
}

// readVersions reads the KEY=value lines of hack/versions.env.
func readVersions(name string) (map[string]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("failed to read versions: %w", err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		vars[strings.TrimSpace(key)] = strings.Trim(strings.TrimSpace(value), `"'`)
	}
	return vars, sc.Err()
}

// toolModules lists the modules compiled into a tool at a version. A tool
// built in a wrapper module is listed there, read-only; any other is
// downloaded (go mod download) and listed inside the download against a
// temporary copy of its go.mod, with GOFLAGS=-mod=mod as go install does.
func toolModules(ctx context.Context, t tool, version, root string) ([]module, error) {
	env := []string{"GOWORK=off", "CGO_ENABLED=0"}
	if t.cgo {
		env = env[:1]
	}
	flags := []string{}
	if t.tags != "" {
		flags = append(flags, "-tags", t.tags)
	}
	if t.dir != "" {
		l := listing{dir: filepath.Join(root, t.dir), env: env, flags: append(flags, "-mod=readonly"), pkgs: t.pkgs}
		mods, err := l.modules(ctx)
		if err != nil {
			return nil, err
		}
		for _, m := range mods {
			if m.Path == t.module && m.Version != version {
				return nil, fmt.Errorf("failed to match versions: %s builds %s %s, %s is %s",
					t.dir, t.module, m.Version, t.versionVar, version)
			}
		}
		return mods, nil
	}
	tmp, err := os.MkdirTemp("", "licenses-")
	if err != nil {
		return nil, fmt.Errorf("failed to create temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	dl, err := download(ctx, tmp, t.module+"@"+version)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(dl.Dir, name))
		if err != nil && !(name == "go.sum" && os.IsNotExist(err)) {
			return nil, fmt.Errorf("failed to read %s of %s: %w", name, t.module, err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
			return nil, fmt.Errorf("failed to copy %s: %w", name, err)
		}
	}
	flags = append(flags, "-mod=mod", "-modfile="+filepath.Join(tmp, "go.mod"))
	l := listing{dir: dl.Dir, env: env, flags: flags, pkgs: t.pkgs}
	mods, err := l.modules(ctx)
	if err != nil {
		return nil, err
	}
	// The tool's own module is the main module of the listing.
	return append([]module{dl}, mods...), nil
}

// download fetches one module into the module cache and returns where it is.
func download(ctx context.Context, tmp, modVersion string) (module, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", modVersion)
	cmd.Dir = tmp // outside any module: nothing else is read or written
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var dl struct{ Path, Version, Dir, Error string }
	if jerr := json.Unmarshal(out, &dl); jerr != nil && err == nil {
		err = jerr
	}
	switch {
	case dl.Error != "":
		err = errors.New(dl.Error)
	case err != nil && stderr.Len() > 0:
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	case err == nil && dl.Dir == "":
		err = errors.New("no directory in go mod download output")
	}
	if err != nil {
		return module{}, fmt.Errorf("failed to download %s: %w", modVersion, err)
	}
	return module{Path: dl.Path, Version: dl.Version, Dir: dl.Dir}, nil
}
