package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
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
	n := &CNINet{ConfDir: t.TempDir(), BinDir: CNIBinDir()}
	n.Bridge, n.Subnet = cniNets.take()
	t.Cleanup(func() { cniNets.give(n.Subnet) })
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

// cniNets are the subnets NewCNINet handed out in this process and not yet
// given back, so that a test with several networks (a cluster of clients)
// never gets one twice.
var cniNets = &subnets{used: map[string]bool{}}

type subnets struct {
	mu   sync.Mutex
	used map[string]bool
}

// take picks a random bridge name and a /24 under 10.215/16 that neither
// this process nor any interface of the host uses: a network another
// process left behind would take the route to the test's own.
func (s *subnets) take() (bridge, subnet string) {
	return s.pick(hostPrefixes())
}

// pick is take with the host's networks given.
func (s *subnets) pick(onHost map[string]bool) (bridge, subnet string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		var b [3]byte
		_, _ = rand.Read(b[:])
		bridge, subnet = "ndc"+hex.EncodeToString(b[:]), fmt.Sprintf("10.215.%d.0/24", b[0])
		if (!s.used[subnet] && !onHost[subnet]) || len(s.used)+len(onHost) >= 256 {
			s.used[subnet] = true
			return bridge, subnet
		}
	}
}

func (s *subnets) give(subnet string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.used, subnet)
}

// PluginBlock is the plugin's `cni { }` block for n's network, with the
// driver's netns files in netnsDir.
func (n *CNINet) PluginBlock(netnsDir string) string {
	return fmt.Sprintf("cni {\n  bin_dir     = %q\n  conf_dir    = %q\n  bridge_name = %q\n  subnet      = %q\n  netns_dir   = %q\n}\n",
		n.BinDir, n.ConfDir, n.Bridge, n.Subnet, netnsDir)
}

// hostPrefixes are the /24 networks of the host's IPv4 addresses.
func hostPrefixes() map[string]bool {
	out := map[string]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			out[(&net.IPNet{IP: n.IP.Mask(net.CIDRMask(24, 32)), Mask: net.CIDRMask(24, 32)}).String()] = true
		}
	}
	return out
}
