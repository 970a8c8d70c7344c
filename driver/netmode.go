package driver

import (
	"fmt"
	"strings"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
	"github.com/nomad-containerd/nomad-driver-containerd/portmap"
)

// The words of the network modes, as jobs, the plugin config and container
// labels spell them. They are defined here only.
const (
	wordHost  = "host"
	wordNone  = "none"
	wordGroup = "group"

	cniModePrefix = "cni/"
)

// netKind is the kind of a network mode. A driver-run CNI network
// ("bridge" or "cni/<name>") has kind netCNI and the conflist name in
// netMode.cni. The zero value means no mode was given.
type netKind int

const (
	netHost  netKind = iota + 1 // the host's network namespace
	netNone                     // a loopback interface only
	netGroup                    // Nomad's group network namespace
	netCNI                      // a network the driver sets up through CNI
)

// netMode is a network mode, parsed once by parseNetMode.
type netMode struct {
	kind netKind
	cni  string // network.BuiltinNetwork or a conflist name, for kind netCNI
}

// set reports whether the mode was given at all.
func (m netMode) set() bool { return m.kind != 0 }

// String is the mode as a user writes it; empty for the zero value.
func (m netMode) String() string {
	switch m.kind {
	case netHost:
		return wordHost
	case netNone:
		return wordNone
	case netGroup:
		return wordGroup
	case netCNI:
		if m.cni == network.BuiltinNetwork {
			return network.BuiltinNetwork
		}
		return cniModePrefix + m.cni
	}
	return ""
}

// portMaps is portmap's decision for the mode: only a network the driver
// sets up takes port maps; in Nomad's group namespace Nomad maps them.
func (m netMode) portMaps() portmap.PortMaps {
	switch m.kind {
	case netCNI:
		return portmap.PortMapsAllowed
	case netGroup:
		return portmap.PortMapsByNomad
	}
	return portmap.PortMapsRefused
}

// parseNetMode reads "host", "none", "bridge" or "cni/<name>".
func parseNetMode(field, v string) (netMode, error) {
	switch {
	case v == wordHost:
		return netMode{kind: netHost}, nil
	case v == wordNone:
		return netMode{kind: netNone}, nil
	case v == network.BuiltinNetwork:
		return netMode{kind: netCNI, cni: network.BuiltinNetwork}, nil
	case strings.HasPrefix(v, cniModePrefix) && validName(strings.TrimPrefix(v, cniModePrefix)):
		return netMode{kind: netCNI, cni: strings.TrimPrefix(v, cniModePrefix)}, nil
	}
	return netMode{}, fmt.Errorf("%s: %q is not %q, %q, %q or %q (a conflist name of letters, digits, '.', '-' and '_')",
		field, v, wordHost, wordNone, network.BuiltinNetwork, "cni/<name>")
}
