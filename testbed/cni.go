package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// CNINet is a CNI setup of the test's own: a conf dir, the bridge name and
// subnet to put in it, and the reference plugins `make deps` built.
type CNINet struct {
	ConfDir string // empty temp dir for the test's conflists
	BinDir  string // CNIBinDir()
	Bridge  string // "ndc" + 6 hex digits: fits IFNAMSIZ, never the driver's default
	Subnet  string // 10.215.X.0/24
}

// NewCNINet makes a CNINet for the test; at its end the bridge link (if
// something created it) is deleted and the conf dir removed.
func NewCNINet(t testing.TB) *CNINet {
	t.Helper()
	Require(t, true, "ip")
	var b [3]byte
	_, _ = rand.Read(b[:])
	n := &CNINet{
		ConfDir: t.TempDir(),
		BinDir:  CNIBinDir(),
		Bridge:  "ndc" + hex.EncodeToString(b[:]),
		Subnet:  fmt.Sprintf("10.215.%d.0/24", b[0]),
	}
	if _, err := os.Stat(n.BinDir); err != nil {
		if InCI() {
			t.Fatalf("testbed: no CNI plugins in %s (run `make deps`)", n.BinDir)
		}
		t.Skipf("testbed: no CNI plugins in %s (run `make deps`)", n.BinDir)
	}
	t.Cleanup(func() {
		ip, _ := LookBin("ip")
		if exec.Command(ip, "link", "show", n.Bridge).Run() == nil {
			if out, err := exec.Command(ip, "link", "del", n.Bridge).CombinedOutput(); err != nil {
				t.Errorf("testbed: delete bridge %s: %v: %s", n.Bridge, err, out)
			}
		}
	})
	return n
}
