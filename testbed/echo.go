package testbed

import "testing"

// EchoBinary builds testbed/cmd/ndc-echo statically (once per process)
// and returns its bytes.
func EchoBinary() ([]byte, error) { return goBuild("./testbed/cmd/ndc-echo") }

// ImportEchoImage imports busybox plus /bin/ndc-echo (a TCP and UDP echo
// server) into cd as ref.
func ImportEchoImage(t testing.TB, cd *Containerd, ref string) {
	t.Helper()
	bin, err := EchoBinary()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	bb, err := BuildBusybox()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	layer, err := NewLayer(File("bin/ndc-echo", 0o755, bin))
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	img, err := bb.Derive(nil, layer)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	if _, err := ImportImage(cd.Context(), cd.Client, img, ref, ""); err != nil {
		t.Fatalf("testbed: failed to import %s: %v", ref, err)
	}
}
