package testbed

import (
	"os"
	"path/filepath"
	"testing"
)

// FakeDevicePluginName is the file name and plugin block label of
// testbed/cmd/ndc-fake-device.
const FakeDevicePluginName = "ndc-fake-device"

// FakeDevicePlugin builds the test device plugin testbed/cmd/ndc-fake-device
// (once per process) into a directory of the test and returns its path,
// for NomadConfig.Plugins.
func FakeDevicePlugin(t testing.TB) string {
	t.Helper()
	bin, err := goBuild("./testbed/cmd/" + FakeDevicePluginName)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	p := filepath.Join(t.TempDir(), FakeDevicePluginName)
	if err := os.WriteFile(p, bin, 0o755); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return p
}
