package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// The check covers the modules whose packages are compiled: the packages
// named and everything they import (with -test, also what their tests
// import), as `go list -deps` reports them. That is what ends up in a binary
// or a test binary, so it is what the licences bind. The whole module graph
// (`go list -m all`) is larger without being more relevant: it also holds
// modules only needed by other modules' tests or by packages nothing here
// imports, their sources are never fetched by a build, and the proxy does not
// serve all of them.

// module is a module providing packages to the build, as go list reports it.
type module struct {
	Path    string
	Version string
	Dir     string
	Main    bool
	Replace *module
}

// builtVersion is the version actually built: the replacement's, if any.
func (m module) builtVersion() string {
	if m.Replace != nil {
		return m.Replace.Version
	}
	return m.Version
}

// label names the module and the version built, or its local replacement.
func (m module) label() string {
	if m.Replace != nil && m.Replace.Version == "" {
		return m.Path + " => " + m.Replace.Path
	}
	return m.Path + " " + m.builtVersion()
}

// listing is one `go list -deps` run.
type listing struct {
	dir   string   // directory to run in
	env   []string // added to the environment
	flags []string // go list flags (-tags, -test, -mod, -modfile)
	pkgs  []string // package patterns
}

// modules runs go list and returns the modules providing the listed packages
// and their dependencies, without the main module and the standard library.
func (l listing) modules(ctx context.Context) ([]module, error) {
	args := append([]string{"list", "-deps", "-json=Module"}, l.flags...)
	args = append(args, l.pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = l.dir
	cmd.Env = append(os.Environ(), l.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("failed to list packages (go %s in %s): %w: %s",
			strings.Join(args, " "), l.dir, err, strings.TrimSpace(stderr.String()))
	}
	seen := map[string]bool{}
	var mods []module
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct{ Module *module }
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("failed to decode go list output: %w", err)
		}
		m := p.Module
		if m == nil || m.Main || seen[m.Path] {
			continue
		}
		seen[m.Path] = true
		if m.Dir == "" && m.Replace != nil {
			m.Dir = m.Replace.Dir
		}
		if m.Dir == "" {
			return nil, fmt.Errorf("failed to locate %s: go list gave no directory (vendored?)", m.label())
		}
		mods = append(mods, *m)
	}
	return mods, nil
}

// listAll runs several listings and merges their modules, sorted by path.
func listAll(ctx context.Context, ls []listing) ([]module, error) {
	seen := map[string]bool{}
	var mods []module
	for _, l := range ls {
		ms, err := l.modules(ctx)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if !seen[m.Path] {
				seen[m.Path] = true
				mods = append(mods, m)
			}
		}
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	return mods, nil
}
