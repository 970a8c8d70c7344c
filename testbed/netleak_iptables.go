package testbed

import (
	"fmt"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
)

// sharedChains are the chains CNI plugins share between containers
// (firewall: CNI-FORWARD, CNI-ADMIN; portmap: CNI-HOSTPORT-*).
var sharedChains = map[string]bool{
	"CNI-FORWARD": true, "CNI-ADMIN": true,
	"CNI-HOSTPORT-DNAT": true, "CNI-HOSTPORT-SETMARK": true, "CNI-HOSTPORT-MASQ": true,
}

// perContainer says whether chain is one a plugin makes per container.
func perContainer(chain string) bool {
	return strings.HasPrefix(chain, "CNI-") && !sharedChains[chain]
}

// iptRule is one rule as iptables-save prints it.
type iptRule struct {
	table, chain, target string
	index                int // 1-based position in the chain
	line                 string
}

// iptState is the host's IPv4 rule set.
type iptState struct {
	chains map[string]string // "table/chain" -> policy ("-" for user chains)
	rules  []iptRule
}

func readIPTables() (*iptState, error) {
	bin, err := LookBin("iptables-save")
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		return nil, fmt.Errorf("iptables-save: %w", err)
	}
	st := &iptState{chains: map[string]string{}}
	table, count := "", map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			if f := strings.Fields(line[1:]); len(f) > 1 {
				st.chains[table+"/"+f[0]] = f[1]
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			r := iptRule{table: table, chain: f[1], line: line}
			for i := 2; i+1 < len(f); i++ {
				if f[i] == "-j" || f[i] == "-g" {
					r.target = f[i+1]
				}
			}
			count[table+"/"+r.chain]++
			r.index = count[table+"/"+r.chain]
			st.rules = append(st.rules, r)
		}
	}
	return st, nil
}

// owned says whether a rule names one of s's networks or IDs, or an address
// in its subnets.
func (s NetScope) owned(r iptRule) bool {
	for _, n := range s.Networks {
		if n != "" && strings.Contains(r.line, `name: \"`+n+`\"`) {
			return true
		}
	}
	if s.IDPrefix != "" && strings.Contains(r.line, `id: \"`+s.IDPrefix) {
		return true
	}
	for _, tok := range strings.Fields(r.line) {
		var a netip.Addr
		if p, err := netip.ParsePrefix(tok); err == nil {
			a = p.Addr()
		} else if host, _, _ := strings.Cut(tok, ":"); host != "" {
			a, _ = netip.ParseAddr(host) // also "10.0.0.5:80" (DNAT targets)
		}
		for _, sn := range s.Subnets {
			if p, err := netip.ParsePrefix(sn); err == nil && a.IsValid() && p.Masked().Contains(a) {
				return true
			}
		}
	}
	return false
}

// match returns s's leaked per-container chains ("table/chain") and its
// rules outside them.
func (st *iptState) match(s NetScope) (rules []iptRule, chains map[string]bool) {
	chains = map[string]bool{}
	var owned []iptRule
	for _, r := range st.rules {
		if !s.owned(r) {
			continue
		}
		owned = append(owned, r)
		for _, c := range []string{r.chain, r.target} {
			if _, ok := st.chains[r.table+"/"+c]; ok && perContainer(c) {
				chains[r.table+"/"+c] = true
			}
		}
	}
	for _, r := range owned {
		if !chains[r.table+"/"+r.chain] {
			rules = append(rules, r)
		}
	}
	return rules, chains
}

// drop deletes rules and the rules elsewhere that jump to chains (highest
// index first, so that the others keep theirs), then flushes and deletes
// chains ("table/chain").
func (st *iptState) drop(rules []iptRule, chains map[string]bool) []error {
	bin, err := LookBin("iptables")
	if err != nil {
		return []error{err}
	}
	var errs []error
	ipt := func(args ...string) {
		if out, err := exec.Command(bin, append([]string{"-w"}, args...)...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("iptables %v: %v: %s", args, err, out))
		}
	}
	for _, r := range st.rules {
		if chains[r.table+"/"+r.target] && !chains[r.table+"/"+r.chain] {
			rules = append(rules, r)
		}
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].index > rules[j].index })
	seen := map[string]bool{}
	for _, r := range rules {
		if k := fmt.Sprint(r.table, r.chain, r.index); !seen[k] {
			seen[k] = true
			ipt("-t", r.table, "-D", r.chain, fmt.Sprint(r.index))
		}
	}
	for _, op := range []string{"-F", "-X"} {
		for _, k := range sortedKeys(chains) {
			table, chain, _ := strings.Cut(k, "/")
			ipt("-t", table, op, chain)
		}
	}
	return errs
}

// unused says no task network is left: there is no per-container chain,
// and the firewall chains hold nothing but their own plumbing.
func (st *iptState) unused() bool {
	for k := range st.chains {
		if _, chain, _ := strings.Cut(k, "/"); perContainer(chain) {
			return false
		}
	}
	for _, r := range st.rules {
		if r.chain == "CNI-ADMIN" || (r.chain == "CNI-FORWARD" && !adminChain(r.target)) {
			return false
		}
	}
	return true
}

// dropNew removes the shared CNI chains that are not in before, and then,
// where iptables can (nf_tables), the built-in chains that are empty with
// policy ACCEPT (which filter nothing): iptables-save shows the built-in
// chains of every table, so whether the plugins made them cannot be told.
func (st *iptState) dropNew(before *iptState) []error {
	chains := map[string]bool{}
	for k := range st.chains {
		if name := strings.SplitN(k, "/", 2)[1]; !before.has(k) && (sharedChains[name] || adminChain(name)) {
			chains[k] = true
		}
	}
	errs := st.drop(nil, chains)
	after, err := readIPTables()
	if err != nil {
		return append(errs, err)
	}
	used := map[string]bool{}
	for _, r := range after.rules {
		used[r.table+"/"+r.chain] = true
	}
	bin, _ := LookBin("iptables")
	for k, policy := range after.chains {
		table, chain, _ := strings.Cut(k, "/")
		if builtinChains[chain] && policy == "ACCEPT" && !used[k] {
			_ = exec.Command(bin, "-w", "-t", table, "-X", chain).Run() // legacy iptables refuses: fine
		}
	}
	return errs
}

// adminChain is a firewall plugin admin chain (CNI-ADMIN, or one a conflist
// names, such as Nomad's NOMAD-ADMIN).
func adminChain(name string) bool { return strings.HasSuffix(name, "-ADMIN") }

func (st *iptState) has(k string) bool { _, ok := st.chains[k]; return ok }

var builtinChains = map[string]bool{"PREROUTING": true, "INPUT": true, "FORWARD": true, "OUTPUT": true, "POSTROUTING": true}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
