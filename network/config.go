// Package network puts tasks on CNI networks: it creates a network namespace
// per task, runs CNI ADD/DEL through go-cni (the built-in "bridge" network or
// any named conflist from the CNI conf dir, with port maps), tears everything
// down again, and renders the task's /etc/hosts and /etc/resolv.conf content.
//
// It knows nothing of containers or Nomad task configs: the driver hands it a
// task ID, a network name and port mappings, and gets back a netns path and
// the task's address.
package network

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
)

// BuiltinNetwork names the network the driver builds itself from Config
// (network_mode = "bridge").
const BuiltinNetwork = "bridge"

// Defaults for Config fields left empty.
const (
	DefaultBinDir     = "/opt/cni/bin"
	DefaultConfDir    = "/etc/cni/net.d"
	DefaultBridgeName = "nomadctr0"
	DefaultSubnet     = "172.31.0.0/16"
	DefaultNetNSDir   = "/var/run/netns"
)

// IfName is the task's interface on its network.
const IfName = "eth0"

// RequiredPlugins are the CNI plugin binaries the built-in network needs.
var RequiredPlugins = []string{"bridge", "host-local", "portmap", "firewall", "loopback"}

// Config is the CNI part of the plugin config (the cni block).
type Config struct {
	BinDirs    []string // CNI plugin dirs (cni.bin_dir, default /opt/cni/bin)
	ConfDir    string   // conflist dir (cni.conf_dir, default /etc/cni/net.d)
	BridgeName string   // built-in "bridge" network's bridge (cni.bridge_name, default "nomadctr0")
	Subnet     string   // built-in network's subnet CIDR (cni.subnet, default "172.31.0.0/16")
	NetNSDir   string   // where netns files are bind-mounted; default "/var/run/netns"
}

// withDefaults returns c with empty fields set to their defaults.
func (c Config) withDefaults() Config {
	if len(c.BinDirs) == 0 {
		c.BinDirs = []string{DefaultBinDir}
	}
	if c.ConfDir == "" {
		c.ConfDir = DefaultConfDir
	}
	if c.BridgeName == "" {
		c.BridgeName = DefaultBridgeName
	}
	if c.Subnet == "" {
		c.Subnet = DefaultSubnet
	}
	if c.NetNSDir == "" {
		c.NetNSDir = DefaultNetNSDir
	}
	return c
}

// Validate applies defaults and checks every field; errors name the plugin
// config field (cni.bin_dir, cni.conf_dir, cni.bridge_name, cni.subnet).
func (c Config) Validate() (Config, error) {
	c = c.withDefaults()
	for _, d := range c.BinDirs {
		if d == "" || !filepath.IsAbs(d) {
			return c, fmt.Errorf("invalid cni.bin_dir %q: must be an absolute path", d)
		}
	}
	if !filepath.IsAbs(c.ConfDir) {
		return c, fmt.Errorf("invalid cni.conf_dir %q: must be an absolute path", c.ConfDir)
	}
	if !filepath.IsAbs(c.NetNSDir) {
		return c, fmt.Errorf("invalid cni.netns_dir %q: must be an absolute path", c.NetNSDir)
	}
	if err := validateBridgeName(c.BridgeName); err != nil {
		return c, err
	}
	if _, err := parseSubnet(c.Subnet); err != nil {
		return c, err
	}
	return c, nil
}

// ifNameRe is what a bridge name may hold: it is both a Linux interface name
// and a CNI network name.
var ifNameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// maxIfName is IFNAMSIZ (16) less the terminating NUL.
const maxIfName = 15

func validateBridgeName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("invalid cni.bridge_name: must not be empty")
	case len(name) > maxIfName:
		return fmt.Errorf("invalid cni.bridge_name %q: longer than %d characters (IFNAMSIZ)", name, maxIfName)
	case !ifNameRe.MatchString(name):
		return fmt.Errorf("invalid cni.bridge_name %q: allowed are letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}

// parseSubnet accepts an IPv4 network in CIDR form, without host bits, with
// room for a gateway and at least one task.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("invalid cni.subnet %q: not a CIDR such as %s", s, DefaultSubnet)
	}
	if !p.Addr().Is4() {
		return p, fmt.Errorf("invalid cni.subnet %q: must be an IPv4 network", s)
	}
	if p.Bits() > 30 {
		return p, fmt.Errorf("invalid cni.subnet %q: prefix longer than /30 leaves no room for a gateway and tasks", s)
	}
	if p.Masked() != p {
		return p, fmt.Errorf("invalid cni.subnet %q: host bits set, the network is %s", s, p.Masked())
	}
	return p, nil
}

// DefaultConflist returns the built-in network's conflist: CNI 1.0.0, named
// after the bridge; a bridge (gateway, masquerade, hairpin) with host-local
// IPAM over subnet and a default route, portmap (portMappings capability,
// SNAT for hairpin and localhost) and firewall, all on the iptables backend.
// Loopback is not in it: the Manager adds it through go-cni's WithLoNetwork.
func DefaultConflist(bridgeName, subnet string) ([]byte, error) {
	if err := validateBridgeName(bridgeName); err != nil {
		return nil, err
	}
	if _, err := parseSubnet(subnet); err != nil {
		return nil, err
	}
	type obj = map[string]any
	conf := obj{
		"cniVersion": "1.0.0",
		"name":       bridgeName,
		"plugins": []obj{
			{
				"type":          "bridge",
				"bridge":        bridgeName,
				"isGateway":     true,
				"ipMasq":        true,
				"ipMasqBackend": "iptables",
				"hairpinMode":   true,
				"ipam": obj{
					"type":   "host-local",
					"ranges": [][]obj{{{"subnet": subnet}}},
					"routes": []obj{{"dst": "0.0.0.0/0"}},
				},
			},
			{
				"type":         "portmap",
				"capabilities": obj{"portMappings": true},
				"snat":         true,
				"backend":      "iptables",
			},
			{
				"type":    "firewall",
				"backend": "iptables",
			},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("failed to encode conflist: %w", err)
	}
	return b, nil
}

// maxIDLen bounds the CNI container ID (and so the netns file name).
const maxIDLen = 200

// ContainerID is the CNI container ID for a task ID: the ID itself when CNI
// accepts it (letters, digits, '_', '.', '-', starting with a letter or
// digit; at most 200 bytes), otherwise a sanitised form with a hash suffix
// that keeps it unique.
func ContainerID(id string) string {
	if ifNameRe.MatchString(id) && len(id) <= maxIDLen {
		return id
	}
	clean := strings.Map(func(r rune) rune {
		if r < 0x80 && ifNameRe.MatchString("a"+string(r)) {
			return r
		}
		return '_'
	}, id)
	if clean == "" || !ifNameRe.MatchString(clean[:1]) {
		clean = "x" + clean
	}
	if len(clean) > maxIDLen-13 {
		clean = clean[:maxIDLen-13]
	}
	return clean + "-" + shortHash(id)
}

// NetNSName is the file name of a task's netns in Config.NetNSDir, so that
// `ip netns` (with the default dir) shows it as nomad-<container id>.
func NetNSName(id string) string { return "nomad-" + ContainerID(id) }
