package driver

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

// TestFilesAreLayered keeps the package's files in layers: a file uses what
// files below it declare and never the other way round, so that no two
// files use each other's declarations. A file is read from the top
// (plugin.go, start.go) down to the pieces it is built from.
func TestFilesAreLayered(t *testing.T) {
	edges := fileEdges(t)
	var mutual []string
	for e, names := range edges {
		if back, ok := edges[[2]string{e[1], e[0]}]; ok && e[0] < e[1] {
			mutual = append(mutual, fmt.Sprintf("%s uses %v of %s, which uses %v of it", e[0], names, e[1], back))
		}
	}
	sort.Strings(mutual)
	must.SliceEmpty(t, mutual, must.Sprintf("files that use each other's declarations (move what both need into a file below them):\n%s", strings.Join(mutual, "\n")))
}

// fileEdges maps (user file, declaring file) to the names the first uses
// from the second, over the package's non-test files, type-checked against
// the compiled export data of its imports.
func fileEdges(t *testing.T) map[[2]string][]string {
	t.Helper()
	exports := exportData(t)
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	must.NoError(t, err)
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, parser.SkipObjectResolution)
		must.NoError(t, err)
		files = append(files, f)
	}
	lookup := func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", lookup)}
	pkg, err := conf.Check("driver", fset, files, info)
	must.NoError(t, err)

	seen := map[[2]string]map[string]bool{}
	for id, obj := range info.Uses {
		if obj.Pkg() != pkg || !obj.Pos().IsValid() {
			continue
		}
		from, to := fset.Position(id.Pos()).Filename, fset.Position(obj.Pos()).Filename
		if from == to {
			continue
		}
		e := [2]string{from, to}
		if seen[e] == nil {
			seen[e] = map[string]bool{}
		}
		seen[e][obj.Name()] = true
	}
	edges := map[[2]string][]string{}
	for e, set := range seen {
		for n := range set {
			edges[e] = append(edges[e], n)
		}
		sort.Strings(edges[e])
	}
	return edges
}

// exportData is import path -> export data file for every dependency of
// the package, as the go command builds them.
func exportData(t *testing.T) map[string]string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}} {{.Export}}", ".")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	must.NoError(t, err, must.Sprint(stderr.String()))
	exports := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if path, file, ok := strings.Cut(sc.Text(), " "); ok && file != "" {
			exports[path] = file
		}
	}
	return exports
}
