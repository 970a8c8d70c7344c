package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// provider is what installs a binary: a Debian package (apt) or a
// hack/deps.sh build step.
type provider struct{ apt, tool string }

// demoUses are the binaries `make demo` runs, directly (hack/demo.sh) or
// through `testbed up` and the driver's built-in bridge network, and what
// installs each. The CNI plugins are network.RequiredPlugins.
var demoUses = map[string]provider{
	"nomad":                   {tool: "nomad"},      // demo.sh: nomad job run, alloc logs, exec; testbed up: the agent
	"ctr":                     {tool: "containerd"}, // demo.sh: the containerd view
	"containerd":              {tool: "containerd"}, // testbed up
	"containerd-shim-runc-v2": {tool: "containerd"}, // containerd runs the tasks through it
	"runc":                    {apt: "runc"},
	"docker-registry":         {apt: "docker-registry"}, // testbed up: the local registry
	"busybox":                 {apt: "busybox-static"},  // testbed up: the image pushed to it
	"ip":                      {apt: "iproute2"},        // the netns and bridge of the built-in network
	"iptables":                {apt: "iptables"},        // the portmap and firewall CNI plugins
}

// notInDemo are test bed binaries the demo never runs, and why.
var notInDemo = map[string]provider{
	"cosign":        {tool: "cosign"},       // signing tests
	"cosign2":       {tool: "cosign"},       // signing tests, classic layout
	"iptables-save": {apt: "iptables"},      // leak checks of the tests
	"losetup":       {},                     // fault tests (util-linux, always there)
	"openssl":       {apt: "openssl"},       // TLS registry tests
	"htpasswd":      {apt: "apache2-utils"}, // auth registry tests
}

// shellVar reads NAME="value" from a shell script.
func shellVar(t *testing.T, script, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `="([^"]*)"`).FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("no %s=\"...\" line", name)
	}
	return strings.Fields(m[1])
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return slices.Compact(s)
}

// TestDemoInstallList reads the demo's install list from hack/demo.sh and
// checks that it is what the demo needs: every binary the demo uses is
// installed by it, and nothing else is (no cosign, no test-only packages).
func TestDemoInstallList(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	demo, deps, versions := read("hack/demo.sh"), read("hack/deps.sh"), read("hack/versions.env")
	apt, tools, cni := shellVar(t, demo, "DEMO_APT"), shellVar(t, demo, "DEMO_TOOLS"), shellVar(t, demo, "DEMO_CNI")

	// the needed set, from what the demo uses
	var wantApt, wantTools []string
	for _, p := range demoUses {
		if p.apt != "" {
			wantApt = append(wantApt, p.apt)
		}
		if p.tool != "" {
			wantTools = append(wantTools, p.tool)
		}
	}
	check := func(what string, got, want []string) {
		if g, w := sorted(got), sorted(want); !slices.Equal(g, w) {
			t.Errorf("%s: demo.sh installs %v, the demo needs %v", what, g, w)
		}
	}
	check("DEMO_APT", apt, wantApt)
	check("DEMO_TOOLS", tools, wantTools)
	check("DEMO_CNI", cni, network.RequiredPlugins)

	// each is something `make deps` installs too
	allApt := shellVar(t, versions, "DEBIAN_PACKAGES")
	for _, p := range apt {
		if !slices.Contains(allApt, p) {
			t.Errorf("DEMO_APT has %s, which hack/versions.env's DEBIAN_PACKAGES lacks", p)
		}
	}
	for _, tool := range tools {
		if !strings.Contains(deps, "\nbuild_"+tool+"() {") {
			t.Errorf("DEMO_TOOLS has %s, which hack/deps.sh does not build", tool)
		}
	}
	for _, p := range cni {
		if !regexp.MustCompile(`\$m/\w+/` + regexp.QuoteMeta(p) + `@`).MatchString(deps) {
			t.Errorf("DEMO_CNI has %s, which hack/deps.sh does not build", p)
		}
	}

	// the demo hands its lists to deps.sh and installs nothing more
	for _, want := range []string{`DEPS_APT="$DEMO_APT" bash hack/deps.sh apt`, `DEPS_CNI="$DEMO_CNI" bash hack/deps.sh cni $DEMO_TOOLS`} {
		if !strings.Contains(demo, want) {
			t.Errorf("demo.sh does not run %s", want)
		}
	}
	script := regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(demo, "")
	if regexp.MustCompile(`(?m)deps\.sh( all|\s*$)|make\b[^\n]* deps\b`).MatchString(script) {
		t.Errorf("demo.sh installs the whole test bed")
	}

	// every test bed binary the demo script or the test bed looks up is
	// either one the demo uses or one it is known not to
	for bin := range notInDemo {
		if regexp.MustCompile(`(^|[\s(|;&])` + regexp.QuoteMeta(bin) + `\s`).MatchString(script) {
			t.Errorf("demo.sh runs %s, which its install list leaves out", bin)
		}
	}
	files, err := filepath.Glob("testbed/*.go")
	if err != nil {
		t.Fatal(err)
	}
	lookups := regexp.MustCompile(`LookBin\("([^"]+)"\)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		for _, m := range lookups.FindAllStringSubmatch(read(f), -1) {
			_, used := demoUses[m[1]]
			_, known := notInDemo[m[1]]
			if !used && !known {
				t.Errorf("%s looks up %s: add it to demoUses (and the demo's install list) or to notInDemo", f, m[1])
			}
		}
	}
}
