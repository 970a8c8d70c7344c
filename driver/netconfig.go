package driver

import (
	"fmt"
	"net/netip"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// NetworkConfig is a task's network options with aliases folded in.
type NetworkConfig struct {
	Mode       netMode           // zero when the task names none
	Ports      []string          // docker's ports
	PortMap    map[string]string // port_map (docker's map, rkt's list form)
	DNS        network.DNS       // dns_servers, dns_search_domains, dns_options
	NoDNS      bool              // rkt's dns_servers = ["none"]: no nameserver at all
	HostDNS    bool              // Roblox's host_dns (default true): mount a resolv.conf at all
	ExtraHosts []network.HostEntry
}

// parseNetworkConfig folds network_mode, host_network (Roblox) and net
// (rkt) into one mode and checks the port, DNS and hosts options.
// rawNetwork is the task's network options, aliases not yet folded.
type rawNetwork struct {
	NetworkMode      string
	HostNetwork      bool
	Net              []string
	Ports            []string
	PortMap          []map[string]string
	DNSServers       []string
	DNSSearchDomains []string
	DNSOptions       []string
	HostDNS          bool
	ExtraHosts       []string
}

func parseNetworkConfig(raw rawNetwork) (NetworkConfig, error) {
	nc := NetworkConfig{Ports: raw.Ports, HostDNS: raw.HostDNS}
	mode := raw.NetworkMode
	set := func(field, v string) error {
		if mode != "" && mode != v {
			return fmt.Errorf("%s: asks for network %q but the task's network mode is already %q; set only one", field, v, mode)
		}
		mode = v
		return nil
	}
	if raw.HostNetwork {
		if err := set("host_network", wordHost); err != nil {
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
	var err error
	if mode != "" {
		if nc.Mode, err = parseNetMode("network_mode", mode); err != nil {
			return nc, err
		}
	}
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
	case wordHost, wordNone:
		return n
	}
	return cniModePrefix + n
}

// parseDNS reads the dns_* options. rkt's dns_servers = ["host"] means the
// host's servers (no override) and ["none"] means no nameserver at all.
func parseDNS(raw rawNetwork) (network.DNS, bool, error) {
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
func resolveNetMode(def netMode, cfg *drivers.TaskConfig, nc NetworkConfig) (netMode, error) {
	if iso := cfg.NetworkIsolation; iso != nil && iso.Mode == drivers.NetIsolationModeGroup && iso.Path != "" {
		if nc.Mode.set() {
			return netMode{}, fmt.Errorf("network_mode: %q cannot be used when the task group has its own network namespace (group network mode); the task joins the group's namespace", nc.Mode)
		}
		return netMode{kind: netGroup}, nil
	}
	if nc.Mode.set() {
		return nc.Mode, nil
	}
	return def, nil
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
