package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var echoOnce struct {
	sync.Once
	data []byte
	err  error
}

// EchoBinary builds testbed/cmd/ndc-echo statically (once per process)
// and returns its bytes.
func EchoBinary() ([]byte, error) {
	echoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ndc-echo-")
		if err != nil {
			echoOnce.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "ndc-echo")
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./testbed/cmd/ndc-echo")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			echoOnce.err = fmt.Errorf("failed to build ndc-echo: %v: %s", err, b)
			return
		}
		echoOnce.data, echoOnce.err = os.ReadFile(out)
	})
	return echoOnce.data, echoOnce.err
}

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
