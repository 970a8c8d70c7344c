package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	gocni "github.com/containerd/go-cni"
	cnilibrary "github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// del runs CNI DEL for every network of n (the conflist and loopback).
//
// After a completed ADD it first lets go-cni run DEL. When that fails (it
// stops at the first failing plugin), or when undoing an ADD that failed
// part way (addFailed), it runs each plugin's DEL on its own, in reverse
// order, going on past failures, so that one broken plugin does not keep
// the others from releasing what they hold. Plugins get the ADD's result as
// prevResult: CNI's cached one, or, since CNI caches nothing for a failed
// ADD, one read from the interface's addresses in the netns (the firewall
// plugin removes its rules by it). It returns the errors of that pass.
func (m *Manager) del(ctx context.Context, n *cniNet, cid, nsPath string, ports []gocni.PortMapping, addFailed bool) error {
	if !addFailed {
		err := n.cni.Remove(ctx, cid, nsPath, gocni.WithCapabilityPortMap(ports))
		if err == nil {
			return nil
		}
		m.logger.Warn("CNI DEL failed; deleting plugin by plugin", "id", cid, "error", err)
	}
	lib := cnilibrary.NewCNIConfig(m.cfg.BinDirs, nil)
	var errs []error
	for _, nw := range n.cni.GetConfig().Networks {
		list := nw.Config
		rt := &cnilibrary.RuntimeConf{
			ContainerID: cid, NetNS: nsPath, IfName: nw.IFName,
			CapabilityArgs: map[string]any{"portMappings": ports},
		}
		inject := map[string]any{"name": list.Name, "cniVersion": list.CNIVersion}
		if ok, _ := version.GreaterThanOrEqualTo(list.CNIVersion, "0.4.0"); ok {
			prev, err := lib.GetNetworkListCachedResult(
				&cnilibrary.NetworkConfigList{Name: list.Name, CNIVersion: list.CNIVersion}, rt)
			if err != nil || prev == nil {
				prev = netnsResult(nsPath, nw.IFName, list.CNIVersion)
			}
			if prev != nil {
				inject["prevResult"] = prev
			}
		}
		for i := len(list.Plugins) - 1; i >= 0; i-- {
			p := list.Plugins[i]
			pc, err := cnilibrary.InjectConf(&cnilibrary.PluginConfig{Network: p.Network, Bytes: []byte(p.Source)}, inject)
			if err == nil {
				err = lib.DelNetwork(ctx, pc, rt)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("plugin type=%q of network %q failed (delete): %w", p.Network.Type, list.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// netnsResult reads ifName's addresses in the netns at nsPath into a CNI
// result of cniVersion; nil when there is no netns, interface or address.
func netnsResult(nsPath, ifName, cniVersion string) types.Result {
	if nsPath == "" {
		return nil
	}
	ipns := netnsAddrs(nsPath, ifName)
	if len(ipns) == 0 {
		return nil
	}
	res := &types100.Result{CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{{Name: ifName, Sandbox: nsPath}}}
	for _, ipn := range ipns {
		res.IPs = append(res.IPs, &types100.IPConfig{Interface: types100.Int(0), Address: *ipn})
	}
	out, err := res.GetAsVersion(cniVersion)
	if err != nil {
		return nil
	}
	return out
}

// delConfig picks the go-cni object and ports for a DEL: CNI's cached config
// and capability args of the ADD when there are any, otherwise the network's
// current conflist and a.Ports. It returns a nil cniNet when neither exists.
func (m *Manager) delConfig(a Attachment, cid string) (*cniNet, []gocni.PortMapping, error) {
	name := a.ConfName
	if name == "" {
		name = a.Network
		if a.Network == BuiltinNetwork {
			name = m.cfg.BridgeName
		}
	}
	lib := cnilibrary.NewCNIConfig(m.cfg.BinDirs, nil)
	cached, rt, err := lib.GetNetworkListCachedConfig(
		&cnilibrary.NetworkConfigList{Name: name},
		&cnilibrary.RuntimeConf{ContainerID: cid, IfName: a.IfName})
	if err != nil {
		m.logger.Warn("ignoring unreadable CNI cache", "id", a.ID, "network", name, "error", err)
		cached = nil
	}
	if len(cached) > 0 {
		n, err := m.cniFor(name, cached)
		if err != nil {
			return nil, nil, err
		}
		return n, cachedPorts(rt, a.Ports), nil
	}
	cur, conf, err := m.conflist(a.Network)
	if errors.Is(err, errNoConflist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	n, err := m.cniFor(cur, conf)
	return n, a.Ports, err
}

// cachedPorts returns the portMappings the ADD was given, as CNI cached
// them, or fallback when the cache has none.
func cachedPorts(rt *cnilibrary.RuntimeConf, fallback []gocni.PortMapping) []gocni.PortMapping {
	if rt == nil || rt.CapabilityArgs == nil {
		return fallback
	}
	raw, ok := rt.CapabilityArgs["portMappings"]
	if !ok {
		return fallback
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return fallback
	}
	var ports []gocni.PortMapping
	if err := json.Unmarshal(b, &ports); err != nil || len(ports) == 0 {
		return fallback
	}
	return ports
}

// netnsAddrs lists ifName's addresses in the netns at nsPath, link-local
// ones left out; none when there is no netns or interface.
func netnsAddrs(nsPath, ifName string) []*net.IPNet {
	var ipns []*net.IPNet
	_ = inNetNS(nsPath, func() error {
		iface, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				ipns = append(ipns, ipn)
			}
		}
		return nil
	})
	return ipns
}

// NetNSAddress is the first IPv4 address of ifName in the netns at nsPath
// (its first address when it has no IPv4); "" when it has none.
func NetNSAddress(nsPath, ifName string) string {
	ipns := netnsAddrs(nsPath, ifName)
	for _, ipn := range ipns {
		if ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	if len(ipns) > 0 {
		return ipns[0].IP.String()
	}
	return ""
}
