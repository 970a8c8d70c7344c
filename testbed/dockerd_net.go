package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// dockerNet is the bridge dockerd's default network runs on (made here:
// dockerd's --bridge takes an existing link, so that docker0 and
// 172.17.0.0/16 are never touched), and the iptables rules before dockerd
// made its own.
type dockerNet struct {
	bridge, subnet string
	before         *iptState
}

// newDockerNet makes a bridge with a name and /24 of the test bed's own
// (as NewCNINet picks them) holding the subnet's first address.
func newDockerNet() (dockerNet, error) {
	n := dockerNet{}
	var err error
	if n.before, err = readIPTables(); err != nil {
		return n, err
	}
	n.bridge, n.subnet = cniNets.take()
	p, err := netip.ParsePrefix(n.subnet)
	if err != nil {
		return n, err
	}
	gw := netip.PrefixFrom(p.Addr().Next(), p.Bits()).String()
	for _, args := range [][]string{
		{"link", "add", n.bridge, "type", "bridge"},
		{"addr", "add", gw, "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return n, err
		}
	}
	return n, nil
}

func ipCmd(args ...string) error {
	ip, err := LookBin("ip")
	if err != nil {
		return err
	}
	if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// dockerChain is a chain dockerd makes (DOCKER, DOCKER-USER,
// DOCKER-ISOLATION-STAGE-1, ...).
func dockerChain(name string) bool { return strings.HasPrefix(name, "DOCKER") }

// ours says whether a rule is dockerd's for this network: it names the
// bridge or an address of the subnet.
func (n dockerNet) ours(r iptRule) bool {
	for _, f := range strings.Fields(r.line) {
		if f == n.bridge {
			return true
		}
	}
	return NetScope{Subnets: []string{n.subnet}}.owned(r)
}

// leftovers are the DOCKER chains that were not there before and the rules
// of this network.
func (n dockerNet) leftovers(st *iptState) (rules []iptRule, chains map[string]bool) {
	chains = map[string]bool{}
	for k := range st.chains {
		if _, chain, _ := strings.Cut(k, "/"); dockerChain(chain) && !n.before.has(k) {
			chains[k] = true
		}
	}
	for _, r := range st.rules {
		if n.ours(r) && !chains[r.table+"/"+r.chain] {
			rules = append(rules, r)
		}
	}
	return rules, chains
}

// remove deletes dockerd's rules and chains, checks with iptables-save
// that none is left, deletes the bridge and gives the subnet back.
func (n dockerNet) remove() []error {
	if n.before == nil {
		return nil
	}
	var errs []error
	if n.bridge != "" {
		defer cniNets.give(n.subnet)
	}
	st, err := readIPTables()
	if err != nil {
		return []error{err}
	}
	errs = append(errs, st.drop(n.leftovers(st))...)
	if st, err = readIPTables(); err != nil {
		return append(errs, err)
	}
	rules, chains := n.leftovers(st)
	for _, r := range rules {
		errs = append(errs, fmt.Errorf("dockerd's iptables rule left: %s", r.line))
	}
	for _, c := range sortedKeys(chains) {
		errs = append(errs, fmt.Errorf("dockerd's iptables chain left: %s", c))
	}
	if n.bridge != "" && ipCmd("link", "show", n.bridge) == nil {
		errs = append(errs, ipCmd("link", "del", n.bridge))
	}
	return errs
}

// removeCgroupTree removes a cgroup parent, and every cgroup below it, in
// every hierarchy (cgroup v1 controllers and the unified one): dockerd
// makes it in all of them.
func removeCgroupTree(parent string) error {
	if parent == "" {
		return nil
	}
	if err := checkCgroupParent(parent); err != nil {
		return err
	}
	roots := []string{"/sys/fs/cgroup"}
	if ents, err := os.ReadDir("/sys/fs/cgroup"); err == nil {
		for _, e := range ents {
			roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	var errs []error
	for _, root := range roots {
		dir := filepath.Join(root, parent)
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			errs = append(errs, removeCpusets(dir))
		}
	}
	return errors.Join(errs...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
