package testbed

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// cniStateDir is where libcni caches results and host-local keeps its
// reservations.
const cniStateDir = "/var/lib/cni"

// NetScope says where a CNI leak check looks: what one test's task networks
// may leave on the host.
type NetScope struct {
	Networks  []string // CNI network names (the built-in network's is its bridge name)
	Bridges   []string // bridges the tasks' veths hang off
	Subnets   []string // the networks' CIDRs: iptables rules naming these addresses
	IDPrefix  string   // the test's container IDs start with it ("" = do not look by ID)
	NetNSDirs []string // dirs that hold the test's netns files (any file there is a leak)
}

// Scope is the NetScope of n's network for container IDs starting with
// idPrefix and netns files in netnsDirs.
func (n *CNINet) Scope(idPrefix string, netnsDirs ...string) NetScope {
	return NetScope{
		Networks: []string{n.Bridge}, Bridges: []string{n.Bridge}, Subnets: []string{n.Subnet},
		IDPrefix: idPrefix, NetNSDirs: netnsDirs,
	}
}

// NetLeaks lists what task networks left in s: netns files, veths on the
// bridges, host-local reservations and cached CNI results, and iptables
// rules and per-container chains (CNI-<hash>, CNI-DN-<hash>) that name the
// networks, the IDs or addresses in the subnets. The chains plugins share
// between containers (CNI-FORWARD, CNI-ADMIN, CNI-HOSTPORT-*) are no leak.
func NetLeaks(s NetScope) []string {
	var out []string
	for kind, items := range map[string][]string{"netns file": s.netnsFiles(), "veth": s.veths(), "cni state": s.stateFiles()} {
		for _, i := range items {
			out = append(out, kind+" "+i)
		}
	}
	sort.Strings(out)
	ipt, err := readIPTables()
	if err != nil {
		return append(out, err.Error())
	}
	rules, chains := ipt.match(s)
	for _, r := range rules {
		out = append(out, fmt.Sprintf("iptables -t %s rule: %s", r.table, r.line))
	}
	for _, c := range sortedKeys(chains) {
		out = append(out, "iptables -t "+strings.Replace(c, "/", " chain ", 1))
	}
	return out
}

// NetLeakCheck registers a cleanup that fails the test when NetLeaks(s) is
// not empty at its end and then purges s (PurgeNet). When no task network
// is left on the host, it also removes the iptables chains that appeared
// during the test (the plugins' shared ones, and the built-in chains of
// tables they made), turns IPv4 forwarding back off if it was, and removes
// /var/lib/cni if it was not there. Call it right after NewCNINet, so that
// it runs before the bridge is deleted.
func NetLeakCheck(t testing.TB, s NetScope) {
	t.Helper()
	Require(t, true, "iptables", "iptables-save", "ip")
	before, err := readIPTables()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	forward, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	_, statErr := os.Stat(cniStateDir)
	t.Cleanup(func() {
		if leaks := NetLeaks(s); len(leaks) > 0 {
			t.Errorf("testbed: leaked by task networks:\n  %s", strings.Join(leaks, "\n  "))
		}
		errs := PurgeNet(s)
		if after, err := readIPTables(); err != nil {
			errs = append(errs, err)
		} else if after.unused() {
			errs = append(errs, after.dropNew(before)...)
			if strings.TrimSpace(string(forward)) == "0" {
				_ = os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0\n"), 0o644)
			}
		}
		if statErr != nil {
			for _, d := range []string{"networks", "results", ""} {
				_ = unix.Rmdir(filepath.Join(cniStateDir, d)) // only if empty
			}
		}
		for _, err := range errs {
			t.Errorf("testbed: %v", err)
		}
	})
}

// PurgeNet removes everything NetLeaks(s) reports, and the networks'
// host-local dirs (a lock and the last reserved address stay there even
// when nothing leaked).
func PurgeNet(s NetScope) []error {
	var errs []error
	add := func(err error) {
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, err)
		}
	}
	ip, err := LookBin("ip")
	add(err)
	for _, v := range s.veths() { // before the netns: veths die with those, asynchronously
		if out, err := exec.Command(ip, "link", "del", v).CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "Cannot find device") {
			add(fmt.Errorf("ip link del %s: %v: %s", v, err, out))
		}
	}
	for _, f := range s.netnsFiles() {
		add(unix.Unmount(f, unix.MNT_DETACH))
		add(os.Remove(f))
	}
	for _, f := range s.stateFiles() {
		add(os.Remove(f))
	}
	for _, n := range s.Networks {
		if n != "" {
			add(os.RemoveAll(filepath.Join(cniStateDir, "networks", n)))
		}
	}
	ipt, err := readIPTables()
	if err != nil {
		return append(errs, err)
	}
	rules, chains := ipt.match(s)
	return append(errs, ipt.drop(rules, chains)...)
}

func (s NetScope) netnsFiles() []string { return entries(s.NetNSDirs...) }

func (s NetScope) veths() []string {
	var out []string
	for _, b := range s.Bridges {
		for _, p := range entries(filepath.Join("/sys/class/net", b, "brif")) {
			out = append(out, filepath.Base(p))
		}
	}
	return out
}

// entries lists the paths of what the dirs hold.
func entries(dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			out = append(out, filepath.Join(d, e.Name()))
		}
	}
	return out
}

// stateFiles are host-local reservations (not its lock and last-reserved
// files) and cached results (named <network>-<container id>-<ifname>) of
// s's networks and IDs.
func (s NetScope) stateFiles() []string {
	var out []string
	for _, n := range s.Networks {
		if n == "" {
			continue
		}
		for _, p := range entries(filepath.Join(cniStateDir, "networks", n)) {
			if b := filepath.Base(p); b != "lock" && !strings.HasPrefix(b, "last_reserved_ip") {
				out = append(out, p)
			}
		}
	}
	for _, p := range entries(filepath.Join(cniStateDir, "results")) {
		owned := s.IDPrefix != "" && strings.Contains(filepath.Base(p), "-"+s.IDPrefix)
		for _, n := range s.Networks {
			owned = owned || (n != "" && strings.HasPrefix(filepath.Base(p), n+"-"))
		}
		if owned {
			out = append(out, p)
		}
	}
	return out
}
