package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestTestBedMatchesDeps keeps testBed in step with hack/deps.sh: every
// package it installs with `go install pkg@$VERSION` is checked at that
// version variable, and the wrapper-module builds are too.
func TestTestBedMatchesDeps(t *testing.T) {
	data, err := os.ReadFile("../deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	script := string(data)
	// Expand the script's local shorthands (local m=github.com/...).
	for _, a := range regexp.MustCompile(`(?m)^\s*local ([a-z]+)=(\S+)$`).FindAllStringSubmatch(script, -1) {
		script = strings.ReplaceAll(script, "$"+a[1]+"/", a[2]+"/")
	}
	var inDeps []string
	for _, m := range regexp.MustCompile(`([\w./-]+)@\$\{?([A-Z0-9_]+)\}?`).FindAllStringSubmatch(script, -1) {
		inDeps = append(inDeps, m[1]+"@"+m[2])
	}
	var inTable []string
	for _, tl := range testBed {
		if tl.dir != "" {
			for _, p := range tl.pkgs {
				if !strings.Contains(script, tl.dir) || !strings.Contains(script, p) {
					t.Errorf("deps.sh does not build %s in %s", p, tl.dir)
				}
			}
			continue
		}
		if tl.tags != "" && !strings.Contains(script, tl.tags) {
			t.Errorf("deps.sh does not build %s with tags %s", tl.name, tl.tags)
		}
		for _, p := range tl.pkgs {
			if p != tl.module && !strings.HasPrefix(p, tl.module+"/") {
				t.Errorf("%s is not in %s", p, tl.module)
			}
			inTable = append(inTable, p+"@"+tl.versionVar)
		}
	}
	sort.Strings(inDeps)
	sort.Strings(inTable)
	if strings.Join(inDeps, "\n") != strings.Join(inTable, "\n") {
		t.Fatalf("deps.sh installs\n%s\nthe licence check covers\n%s", strings.Join(inDeps, "\n"), strings.Join(inTable, "\n"))
	}
}

func TestReadVersions(t *testing.T) {
	name := filepath.Join(t.TempDir(), "versions.env")
	text := "# pinned\nA_VERSION=v1.2.3\nB_VERSION=v2.0.0 # a comment\nLIST=\"x y\"\n"
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	vars, err := readVersions(name)
	if err != nil {
		t.Fatal(err)
	}
	if vars["A_VERSION"] != "v1.2.3" || vars["B_VERSION"] != "v2.0.0" || vars["LIST"] != "x y" {
		t.Fatalf("versions %v", vars)
	}
	real, err := readVersions("../versions.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range testBed {
		if real[tl.versionVar] == "" {
			t.Errorf("hack/versions.env has no %s for %s", tl.versionVar, tl.name)
		}
	}
}
