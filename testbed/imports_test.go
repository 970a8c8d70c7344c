package testbed

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPluginDoesNotImportTestbed keeps the test bed out of the plugin binary.
func TestPluginDoesNotImportTestbed(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go tool in PATH: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-deps", ".")
	cmd.Dir = RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps .: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasSuffix(pkg, "/testbed") || strings.Contains(pkg, "/testbed/") {
			t.Fatalf("the plugin imports %s", pkg)
		}
	}
}
