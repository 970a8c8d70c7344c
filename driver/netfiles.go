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

// netFiles are the task's /etc/hosts and /etc/resolv.conf in its task
// directory (never in the image, never a host file bound writable): made
// empty before the container, so that runc binds them, and written in
// place (the same inode) once the task's address is known, before its
// process runs.
type netFiles struct {
	cfg    *drivers.TaskConfig
	tc     *TaskConfig
	mode   netMode
	hosts  *os.File
	resolv *os.File // nil: the image's own resolv.conf stays
}

// makeNetFiles creates the task's files and returns the mounts for them.
// fromCNI are the DNS settings of the task's CNI result, when known: with
// none, the task gets a resolv.conf of the driver's only where its own
// settings ask for one (see resolvAwaitsCNI).
func makeNetFiles(cfg *drivers.TaskConfig, tc *TaskConfig, mode netMode, fromCNI network.DNS, p *pins) (_ *netFiles, _ []specs.Mount, err error) {
	f := &netFiles{cfg: cfg, tc: tc, mode: mode}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	hosts, err := createTaskFile(cfg, "hosts", "/etc/hosts", p)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to write hosts file: %w", err)
	}
	f.hosts = hosts.file
	ms := []specs.Mount{hosts.mount}
	if !ownResolv(tc.Network, cfg.DNS, fromCNI) {
		return f, ms, nil // host_dns = false and nothing set: the image's own resolv.conf
	}
	resolv, err := createTaskFile(cfg, "resolv.conf", "/etc/resolv.conf", p)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to write resolv.conf: %w", err)
	}
	f.resolv = resolv.file
	return f, append(ms, resolv.mount), nil
}

// ownResolv reports whether a task gets a resolv.conf of the driver's.
func ownResolv(nc NetworkConfig, nomad *drivers.DNSConfig, fromCNI network.DNS) bool {
	dns := effectiveDNS(nc, nomad, fromCNI)
	return nc.HostDNS || nc.NoDNS || dns.Servers != nil || dns.Searches != nil || dns.Options != nil
}

// resolvAwaitsCNI reports whether a task on a CNI network gets a
// resolv.conf hangs on the DNS settings its CNI result brings.
func resolvAwaitsCNI(cfg *drivers.TaskConfig, tc *TaskConfig) bool {
	return !ownResolv(tc.Network, cfg.DNS, network.DNS{})
}

// write fills the files: the hostname maps to the task's own address, its
// CNI address (res) or the address Nomad gave the group.
func (f *netFiles) write(res *network.Result) error {
	nc := f.tc.Network
	address, gateway := "", ""
	var fromCNI network.DNS
	name := hostname(f.cfg, f.tc)
	switch {
	case res != nil:
		address, gateway, fromCNI = res.IP, res.Gateway, res.DNS
	case f.mode.kind == netGroup && name != "":
		address = groupAddress(f.cfg.NetworkIsolation)
	}
	extra, err := network.ResolveHostGateway(nc.ExtraHosts, gateway)
	if err != nil {
		return err
	}
	if err := fill(f.hosts, network.HostsFile(name, address, extra)); err != nil {
		return fmt.Errorf("failed to write hosts file: %w", err)
	}
	if f.resolv == nil {
		return nil
	}
	dns := effectiveDNS(nc, f.cfg.DNS, fromCNI)
	if nc.NoDNS {
		dns.Servers = nil
	}
	ownNetNS := f.mode.kind != netHost
	var base []byte
	if nc.HostDNS && !nc.NoDNS {
		if base, err = network.HostResolvConf(ownNetNS); err != nil {
			return err
		}
	}
	if err := fill(f.resolv, network.ResolvConfForNetNS(base, dns, ownNetNS)); err != nil {
		return fmt.Errorf("failed to write resolv.conf: %w", err)
	}
	return nil
}

// close releases the files; it is safe on a nil or closed set.
func (f *netFiles) close() {
	if f == nil {
		return
	}
	for _, file := range []*os.File{f.hosts, f.resolv} {
		if file != nil {
			file.Close()
		}
	}
	f.hosts, f.resolv = nil, nil
}

// networkFiles makes and writes the task's files for a network whose
// result (nil for modes without a CNI network) is known.
func networkFiles(cfg *drivers.TaskConfig, tc *TaskConfig, mode netMode, res *network.Result, p *pins) ([]specs.Mount, error) {
	var fromCNI network.DNS
	if res != nil {
		fromCNI = res.DNS
	}
	f, ms, err := makeNetFiles(cfg, tc, mode, fromCNI, p)
	if err != nil {
		return nil, err
	}
	defer f.close()
	if err := f.write(res); err != nil {
		return nil, err
	}
	return ms, nil
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

// taskFile is a file of the driver's in the task directory, open for
// writing, and its bind mount.
type taskFile struct {
	file  *os.File
	mount specs.Mount
}

// createTaskFile creates an empty file of the driver's in the task
// directory and returns it with its bind mount at dest, pinned. A task can
// reach its task directory (a relative bind of ".." is inside its
// allocation), so a symlink may wait at the file's name. The file is made
// through the allocation directory opened as an os.Root, under a new name
// that is then renamed over the name: a symlink there is replaced, never
// followed, and no path component leads out of the allocation. The pin
// must reach the very file that was made; it is written through the
// descriptor returned, never by path.
func createTaskFile(cfg *drivers.TaskConfig, name, dest string, p *pins) (taskFile, error) {
	root, err := os.OpenRoot(cfg.AllocDir)
	if err != nil {
		return taskFile{}, err
	}
	defer root.Close()
	rel, err := filepath.Rel(cfg.AllocDir, filepath.Join(cfg.TaskDir().Dir, name))
	if err != nil {
		return taskFile{}, err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", rel, rand.Uint64())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return taskFile{}, err
	}
	if err := root.Rename(tmp, rel); err != nil {
		f.Close()
		_ = root.Remove(tmp)
		return taskFile{}, err
	}
	m, err := pinTaskFile(cfg, name, rel, dest, f, p)
	if err != nil {
		f.Close()
		return taskFile{}, err
	}
	return taskFile{file: f, mount: m}, nil
}

// pinTaskFile pins the task file f made at rel (in the allocation) and
// returns its bind mount at dest.
func pinTaskFile(cfg *drivers.TaskConfig, name, rel, dest string, f *os.File, p *pins) (specs.Mount, error) {
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
	made, err := f.Stat()
	if err != nil {
		return specs.Mount{}, err
	}
	pinned, err := pin.file.Stat()
	if err != nil {
		return specs.Mount{}, err
	}
	if !os.SameFile(made, pinned) {
		return specs.Mount{}, fmt.Errorf("%s was replaced in the task directory while it was made: refused", name)
	}
	p.bind(name, dest, pin)
	return bindMount(pin.real, dest, false, executor.IDMapOption), nil
}

// fill replaces the contents of f with data, in place.
func fill(f *os.File, data []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt(data, 0)
	return err
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
