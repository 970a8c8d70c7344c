package driver

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// Network mode kinds. A driver-run CNI network ("bridge" or "cni/<name>")
// has kind netCNI and the conflist name in netMode.cni.
const (
	netHost  = "host"
	netNone  = "none"
	netGroup = "group"
	netCNI   = "cni"

	cniModePrefix = "cni/"
)

// netMode is a task's resolved network mode.
type netMode struct {
	kind string
	cni  string // network.BuiltinNetwork or a conflist name, for kind netCNI
}

// String is the mode as a user writes it (and portmap's Mode).
func (m netMode) String() string {
	switch {
	case m.kind != netCNI:
		return m.kind
	case m.cni == network.BuiltinNetwork:
		return network.BuiltinNetwork
	default:
		return cniModePrefix + m.cni
	}
}

// parseNetMode reads "host", "none", "bridge" or "cni/<name>".
func parseNetMode(field, v string) (netMode, error) {
	switch {
	case v == netHost || v == netNone:
		return netMode{kind: v}, nil
	case v == network.BuiltinNetwork:
		return netMode{kind: netCNI, cni: network.BuiltinNetwork}, nil
	case strings.HasPrefix(v, cniModePrefix) && validCNIName(strings.TrimPrefix(v, cniModePrefix)):
		return netMode{kind: netCNI, cni: strings.TrimPrefix(v, cniModePrefix)}, nil
	}
	return netMode{}, fmt.Errorf("%s: %q is not %q, %q, %q or %q (a conflist name of letters, digits, '.', '-' and '_')",
		field, v, netHost, netNone, network.BuiltinNetwork, "cni/<name>")
}

func validCNIName(n string) bool {
	if n == "" {
		return false
	}
	for _, r := range n {
		ok := r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// NetworkConfig is a task's network options with aliases folded in.
type NetworkConfig struct {
	Mode       string            // "", or a value parseNetMode accepts
	Ports      []string          // docker's ports
	PortMap    map[string]string // port_map (docker's map, rkt's list form)
	DNS        network.DNS       // dns_servers, dns_search_domains, dns_options
	NoDNS      bool              // rkt's dns_servers = ["none"]: no nameserver at all
	HostDNS    bool              // Roblox's host_dns (default true): mount a resolv.conf at all
	ExtraHosts []network.HostEntry
}

// parseNetworkConfig folds network_mode, host_network (Roblox) and net
// (rkt) into one mode and checks the port, DNS and hosts options.
func parseNetworkConfig(raw rawTaskConfig) (NetworkConfig, error) {
	nc := NetworkConfig{Mode: raw.NetworkMode, Ports: raw.Ports, HostDNS: raw.HostDNS}
	set := func(field, v string) error {
		if nc.Mode != "" && nc.Mode != v {
			return fmt.Errorf("%s: asks for network %q but the task's network mode is already %q; set only one", field, v, nc.Mode)
		}
		nc.Mode = v
		return nil
	}
	if raw.HostNetwork {
		if err := set("host_network", netHost); err != nil {
			return nc, err
		}
	}
	switch len(raw.Net) {
	case 0:
	case 1:
		if err := set("net", rktNet(raw.Net[0])); err != nil {
			return nc, err
		}
	default:
		return nc, fmt.Errorf("net: %q names %d networks; a task joins one network", raw.Net, len(raw.Net))
	}
	if nc.Mode != "" {
		if _, err := parseNetMode("network_mode", nc.Mode); err != nil {
			return nc, err
		}
	}
	var err error
	if nc.PortMap, err = flattenMaps("port_map", raw.PortMap); err != nil {
		return nc, err
	}
	if nc.DNS, nc.NoDNS, err = parseDNS(raw); err != nil {
		return nc, err
	}
	for _, s := range raw.ExtraHosts {
		e, err := network.ParseExtraHost(s)
		if err != nil {
			return nc, err
		}
		nc.ExtraHosts = append(nc.ExtraHosts, e)
	}
	return nc, nil
}

// rktNet maps rkt's net names: "default" is the built-in bridge, "host"
// and "none" keep their meaning, anything else names a conflist.
func rktNet(n string) string {
	switch n {
	case "default":
		return network.BuiltinNetwork
	case netHost, netNone:
		return n
	}
	return cniModePrefix + n
}

// parseDNS reads the dns_* options. rkt's dns_servers = ["host"] means the
// host's servers (no override) and ["none"] means no nameserver at all.
func parseDNS(raw rawTaskConfig) (network.DNS, bool, error) {
	dns := network.DNS{Searches: raw.DNSSearchDomains, Options: raw.DNSOptions}
	switch {
	case len(raw.DNSServers) == 1 && raw.DNSServers[0] == "host":
		return dns, false, nil
	case len(raw.DNSServers) == 1 && raw.DNSServers[0] == "none":
		return dns, true, nil
	}
	for _, s := range raw.DNSServers {
		if !isIP(s) {
			return dns, false, fmt.Errorf("dns_servers: %q is not an IP address (or rkt's \"host\" / \"none\" on its own)", s)
		}
	}
	dns.Servers = raw.DNSServers
	return dns, false, nil
}

// resolveNetMode picks the task's mode: Nomad's group namespace when the
// group has one, else the task's choice, else the plugin's default.
func resolveNetMode(c *Config, cfg *drivers.TaskConfig, nc NetworkConfig) (netMode, error) {
	if iso := cfg.NetworkIsolation; iso != nil && iso.Mode == drivers.NetIsolationModeGroup && iso.Path != "" {
		if nc.Mode != "" {
			return netMode{}, fmt.Errorf("network_mode: %q cannot be used when the task group has its own network namespace (group network mode); the task joins the group's namespace", nc.Mode)
		}
		return netMode{kind: netGroup}, nil
	}
	mode := nc.Mode
	if mode == "" {
		mode = c.DefaultNetworkMode
	}
	return parseNetMode("network_mode", mode)
}

// effectiveDNS layers the task's dns_* options over Nomad's dns block and
// the CNI result's DNS, field by field.
func effectiveDNS(nc NetworkConfig, nomad *drivers.DNSConfig, fromCNI network.DNS) network.DNS {
	out := fromCNI
	if nomad != nil {
		out = pickDNS(out, network.DNS{Servers: nomad.Servers, Searches: nomad.Searches, Options: nomad.Options})
	}
	return pickDNS(out, nc.DNS)
}

func pickDNS(base, over network.DNS) network.DNS {
	if len(over.Servers) > 0 {
		base.Servers = over.Servers
	}
	if len(over.Searches) > 0 {
		base.Searches = over.Searches
	}
	if len(over.Options) > 0 {
		base.Options = over.Options
	}
	return base
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
