package driver

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/hashicorp/nomad/plugins/drivers"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// networkFiles writes the task's /etc/hosts and /etc/resolv.conf into its
// task directory (never into the image, never a host file bound writable)
// and returns the mounts for them. The hostname maps to the task's own
// address: its CNI address, or the address Nomad gave the group.
func networkFiles(cfg *drivers.TaskConfig, tc *TaskConfig, mode netMode, res *network.Result, p *pins) ([]specs.Mount, error) {
	nc := tc.Network
	address, gateway := "", ""
	var fromCNI network.DNS
	name := hostname(cfg, tc)
	switch {
	case res != nil:
		address, gateway, fromCNI = res.IP, res.Gateway, res.DNS
	case mode.kind == netGroup && name != "":
		address = groupAddress(cfg.NetworkIsolation)
	}
	extra, err := network.ResolveHostGateway(nc.ExtraHosts, gateway)
	if err != nil {
		return nil, err
	}
	hosts, err := writeTaskFile(cfg, "hosts", network.HostsFile(name, address, extra), "/etc/hosts", p)
	if err != nil {
		return nil, fmt.Errorf("failed to write hosts file: %w", err)
	}
	ms := []specs.Mount{hosts}
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
	resolv, err := writeTaskFile(cfg, "resolv.conf", network.ResolvConfForNetNS(base, dns, ownNetNS), "/etc/resolv.conf", p)
	if err != nil {
		return nil, fmt.Errorf("failed to write resolv.conf: %w", err)
	}
	return append(ms, resolv), nil
}

// groupAddress is the address in the group network namespace that the
// hostname maps to: the one Nomad names, else the namespace's own on eth0
// (where Nomad's bridge and CNI networks put it); "" when it has none.
func groupAddress(iso *drivers.NetworkIsolationSpec) string {
	if iso.HostsConfig != nil && iso.HostsConfig.Address != "" {
		return iso.HostsConfig.Address
	}
	return network.NetNSAddress(iso.Path, network.IfName)
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

// writeTaskFile writes a file of the driver's into the task directory and
// returns its bind mount at dest, pinned. A task can reach its task
// directory (a relative bind of ".." is inside its allocation), so a
// symlink may wait at the file's name. The write goes through the
// allocation directory opened as an os.Root, into a new file that is then
// renamed over the name: a symlink there is replaced, never followed, and
// no path component leads out of the allocation.
func writeTaskFile(cfg *drivers.TaskConfig, name string, data []byte, dest string, p *pins) (specs.Mount, error) {
	root, err := os.OpenRoot(cfg.AllocDir)
	if err != nil {
		return specs.Mount{}, err
	}
	defer root.Close()
	rel, err := filepath.Rel(cfg.AllocDir, filepath.Join(cfg.TaskDir().Dir, name))
	if err != nil {
		return specs.Mount{}, err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", rel, rand.Uint64())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return specs.Mount{}, err
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = root.Rename(tmp, rel)
	}
	if werr != nil {
		_ = root.Remove(tmp)
		return specs.Mount{}, werr
	}
	allocReal, err := filepath.EvalSymlinks(cfg.AllocDir)
	if err != nil {
		return specs.Mount{}, err
	}
	pin, err := p.open(filepath.Join(cfg.AllocDir, rel))
	if err != nil {
		return specs.Mount{}, err
	}
	if !isUnder(pin.real, allocReal) {
		return specs.Mount{}, fmt.Errorf("%s resolves to %q, outside the allocation directory: refused", name, pin.real)
	}
	p.bind(name, dest, pin)
	return bindMount(pin.real, dest, false, executor.IDMapOption), nil
}

// hostname is the task's hostname option, else the one Nomad gave the
// group; "" keeps the runtime's default.
func hostname(cfg *drivers.TaskConfig, tc *TaskConfig) string {
	if tc.Hostname != "" {
		return tc.Hostname
	}
	if iso := cfg.NetworkIsolation; iso != nil && iso.HostsConfig != nil {
		return iso.HostsConfig.Hostname
	}
	return ""
}
