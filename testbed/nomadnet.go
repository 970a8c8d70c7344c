package testbed

import (
	"fmt"
	"os/exec"
	"testing"
)

// nomadBridge is the name and subnet of the bridge network Nomad makes
// for group network mode = "bridge", from the agent's id.
func nomadBridge(id string) (name, subnet string) {
	sub := 0
	if len(id) >= 2 {
		_, _ = fmt.Sscanf(id[:2], "%x", &sub)
	}
	return "ndc" + id, fmt.Sprintf("10.213.%d.0/24", sub)
}

// BridgeScope is the NetScope of the agent's group bridge network. At the
// end of the test what Nomad leaves of it is purged (it keeps a NOMAD-ADMIN
// rule per bridge, and the bridge itself) and the bridge is deleted.
func (n *Nomad) BridgeScope(t testing.TB) NetScope {
	t.Helper()
	bridge, subnet := nomadBridge(n.id)
	s := NetScope{Networks: []string{bridge}, Bridges: []string{bridge}, Subnets: []string{subnet}}
	t.Cleanup(func() {
		for _, err := range PurgeNet(s) {
			t.Errorf("testbed: %v", err)
		}
		ip, _ := LookBin("ip")
		if exec.Command(ip, "link", "show", bridge).Run() == nil {
			if out, err := exec.Command(ip, "link", "del", bridge).CombinedOutput(); err != nil {
				t.Errorf("testbed: delete bridge %s: %v: %s", bridge, err, out)
			}
		}
	})
	return s
}
