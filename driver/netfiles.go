package driver

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/nomad/plugins/drivers"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// networkFiles writes the task's /etc/hosts and /etc/resolv.conf into its
// task directory (never into the image, never a host file bound writable)
// and returns the mounts for them. The hostname maps to the task's own
// address: its CNI address, or the address Nomad gave the group.
func networkFiles(cfg *drivers.TaskConfig, tc *TaskConfig, mode netMode, res *network.Result) ([]specs.Mount, error) {
	nc := tc.Network
	address, gateway := "", ""
	var fromCNI network.DNS
	switch {
	case res != nil:
		address, gateway, fromCNI = res.IP, res.Gateway, res.DNS
	case mode.kind == netGroup && cfg.NetworkIsolation.HostsConfig != nil:
		address = cfg.NetworkIsolation.HostsConfig.Address
	}
	extra, err := network.ResolveHostGateway(nc.ExtraHosts, gateway)
	if err != nil {
		return nil, err
	}
	dir := cfg.TaskDir().Dir
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, network.HostsFile(hostname(cfg, tc), address, extra), 0o644); err != nil {
		return nil, fmt.Errorf("failed to write hosts file: %w", err)
	}
	ms := []specs.Mount{bindMount(hosts, "/etc/hosts", false)}
	dns := effectiveDNS(nc, cfg.DNS, fromCNI)
	if nc.NoDNS {
		dns.Servers = nil
	}
	if !nc.HostDNS && !nc.NoDNS && dns.Servers == nil && dns.Searches == nil && dns.Options == nil {
		return ms, nil // host_dns = false and nothing set: the image's own resolv.conf
	}
	ownNetNS := mode.kind != netHost
	var base []byte
	if nc.HostDNS && !nc.NoDNS {
		if base, err = network.HostResolvConf(ownNetNS); err != nil {
			return nil, err
		}
	}
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, network.ResolvConfForNetNS(base, dns, ownNetNS), 0o644); err != nil {
		return nil, fmt.Errorf("failed to write resolv.conf: %w", err)
	}
	return append(ms, bindMount(resolv, "/etc/resolv.conf", false)), nil
}

// checkExtraHosts refuses host-gateway entries where the task has no
// network gateway, before anything is set up.
func checkExtraHosts(nc NetworkConfig, mode netMode) error {
	if mode.kind == netCNI {
		return nil
	}
	_, err := network.ResolveHostGateway(nc.ExtraHosts, "")
	return err
}
