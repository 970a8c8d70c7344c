package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	gocni "github.com/containerd/go-cni"
	"github.com/hashicorp/go-hclog"
)

// cleanupTimeout bounds the DEL run after a failed ADD, which gets a context
// of its own because the caller's may be what ended the ADD.
const cleanupTimeout = time.Minute

// Request asks for a task's network.
type Request struct {
	ID      string              // unique per task (the container ID); CNI container ID and netns name derive from it
	Network string              // BuiltinNetwork ("" means it too) or the name of a conflist in ConfDir (network_mode = "cni/<name>")
	Ports   []gocni.PortMapping // portMappings capability args (may be empty)
	// AnyPortBinds lets every process in the netns bind ports below 1024
	// (net.ipv4.ip_unprivileged_port_start = 0, as docker sets it): a task
	// in a user namespace of its own has no capability over a netns that
	// the host's user namespace owns, nor can it set the sysctl itself.
	AnyPortBinds bool
}

// Attachment is everything teardown needs; the driver persists it in task
// state (exported fields only).
type Attachment struct {
	ID        string
	Network   string
	NetNSPath string
	IfName    string // "eth0"
	Ports     []gocni.PortMapping
	IP        string // task's IPv4 on the network (or its first address when it has no IPv4)
	Gateway   string
	// ConfName is the CNI network name (the conflist's "name"; the bridge
	// name for the built-in network); teardown finds CNI's cached config of
	// the ADD by it.
	ConfName string
}

// Result is what Setup made.
type Result struct {
	Attachment
	DNS DNS // nameservers/search/options from the CNI result (may be empty)
}

// DNS holds resolver settings.
type DNS struct{ Servers, Searches, Options []string }

// Manager sets up and tears down task networks. It is safe for concurrent use.
type Manager struct {
	cfg    Config
	logger hclog.Logger

	mu   sync.Mutex
	nets map[string]*cniNet // by CNI network name
	lo   *cniNet            // loopback only, for networks whose config is gone

	// coldMu serialises ADDs on networks that have not had a successful
	// one yet: plugins create their shared iptables chains check-then-add,
	// and concurrent first ADDs fail with "chain already exists".
	coldMu sync.Mutex

	// groupMu serialises the creation and removal of group namespaces, so
	// that a repeated request finds the namespace the first one made.
	groupMu sync.Mutex
}

// cniNet is a go-cni object loaded with one conflist (plus loopback).
type cniNet struct {
	conf []byte
	cni  gocni.CNI
	warm atomic.Bool // an ADD succeeded: shared chains and the bridge exist
}

// New validates cfg (errors name the cni.* field) and returns a Manager. It
// does no I/O.
func New(cfg Config, logger hclog.Logger) (*Manager, error) {
	cfg, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Manager{cfg: cfg, logger: logger.Named("network"), nets: map[string]*cniNet{}}, nil
}

// Config returns the validated config, defaults applied.
func (m *Manager) Config() Config { return m.cfg }

// MissingPlugins lists the RequiredPlugins found in none of the bin dirs
// (for fingerprinting the built-in network).
func (m *Manager) MissingPlugins() []string { return m.cfg.Missing(RequiredPlugins) }

// NetNSPath is where the netns of task id lives.
func (m *Manager) NetNSPath(id string) string {
	return filepath.Join(m.cfg.NetNSDir, NetNSName(id))
}

// add runs CNI ADD, alone while n is cold (see Manager.coldMu).
func (m *Manager) add(ctx context.Context, n *cniNet, cid, nsPath string, ports []gocni.PortMapping) (*gocni.Result, error) {
	if !n.warm.Load() {
		m.coldMu.Lock()
		defer m.coldMu.Unlock()
	}
	res, err := n.cni.Setup(ctx, cid, nsPath, gocni.WithCapabilityPortMap(ports))
	if err == nil {
		n.warm.Store(true)
	}
	return res, err
}

// fillResult copies the task's address on IfName into a.
func fillResult(a *Attachment, res *gocni.Result) error {
	iface, ok := res.Interfaces[IfName]
	if !ok {
		return fmt.Errorf("no %s in the CNI result", IfName)
	}
	var first *gocni.IPConfig
	for _, c := range iface.IPConfigs {
		if first == nil {
			first = c
		}
		if c.IP.To4() != nil {
			first = c
			break
		}
	}
	if first != nil {
		a.IP = first.IP.String()
		if first.Gateway != nil {
			a.Gateway = first.Gateway.String()
		}
	}
	return nil
}

// dnsOf merges the DNS settings of all networks in res.
func dnsOf(res *gocni.Result) DNS {
	var d DNS
	for _, x := range res.DNS {
		d.Servers = append(d.Servers, x.Nameservers...)
		if x.Domain != "" {
			d.Searches = append(d.Searches, x.Domain)
		}
		d.Searches = append(d.Searches, x.Search...)
		d.Options = append(d.Options, x.Options...)
	}
	return d
}

// Teardown runs CNI DEL for a (with the config and ports the ADD used, as
// CNI cached them, else the current conflist and a.Ports), then unmounts and
// removes the netns. It is idempotent: a second call, a missing netns or a
// missing conflist does not fail (with neither the conflist nor CNI's cache
// of it, only loopback is deleted, which is logged). When DEL fails the
// netns is kept, so that a later call can finish the job (the bridge plugin
// needs it to find the masquerade rule it made).
func (m *Manager) Teardown(ctx context.Context, a Attachment) error {
	if a.ID == "" {
		return fmt.Errorf("failed to tear down network %q: empty task id", a.Network)
	}
	if a.Network == "" {
		a.Network = BuiltinNetwork
	}
	if a.NetNSPath == "" {
		a.NetNSPath = m.NetNSPath(a.ID)
	}
	if a.IfName == "" {
		a.IfName = IfName
	}
	log := m.logger.With("id", a.ID, "network", a.Network, "netns", a.NetNSPath)
	cid := ContainerID(a.ID)

	n, ports, err := m.delConfig(a, cid)
	if err != nil {
		return fmt.Errorf("failed to tear down network %q: %w", a.Network, err)
	}
	if n == nil {
		// Nothing says what the network's plugins were: what they hold
		// outside the netns (IPAM, iptables) cannot be released.
		log.Warn("network config is gone and CNI cached none; removing the netns with loopback DEL only", "conf_dir", m.cfg.ConfDir)
		if n, err = m.loopback(); err != nil {
			return fmt.Errorf("failed to tear down network %q: %w", a.Network, err)
		}
	}
	nsPath := a.NetNSPath
	if err := checkNetNS(nsPath); errors.Is(err, fs.ErrNotExist) {
		// CNI allows DEL without a netns: plugins release what is outside
		// it (IPAM, iptables).
		nsPath = ""
	}
	if err := m.del(ctx, n, cid, nsPath, ports, false); err != nil {
		return fmt.Errorf("failed to tear down network %q: %w", a.Network, err)
	}
	if err := removeNetNS(a.NetNSPath); err != nil {
		return fmt.Errorf("failed to tear down network %q: %w", a.Network, err)
	}
	log.Debug("network torn down")
	return nil
}

// Check reports whether a's netns still exists; an error matching
// fs.ErrNotExist says it is gone.
func (m *Manager) Check(_ context.Context, a Attachment) error {
	path := a.NetNSPath
	if path == "" {
		path = m.NetNSPath(a.ID)
	}
	return checkNetNS(path)
}

// loopback returns a go-cni object with the loopback network only.
func (m *Manager) loopback() (*cniNet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lo != nil {
		return m.lo, nil
	}
	c, err := gocni.New(gocni.WithPluginDir(m.cfg.BinDirs), gocni.WithMinNetworkCount(1))
	if err == nil {
		err = c.Load(gocni.WithLoNetwork)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to load the loopback network: %w", err)
	}
	m.lo = &cniNet{cni: c}
	return m.lo, nil
}

// cniFor returns the cached go-cni object for network name, loading a new
// one when conf differs from the cached one's.
func (m *Manager) cniFor(name string, conf []byte) (*cniNet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.nets[name]; ok && bytes.Equal(n.conf, conf) {
		return n, nil
	}
	c, err := gocni.New(gocni.WithPluginDir(m.cfg.BinDirs), gocni.WithMinNetworkCount(2))
	if err != nil {
		return nil, fmt.Errorf("failed to create CNI: %w", err)
	}
	// The conflist comes first so that it gets eth0; loopback is "lo".
	if err := c.Load(gocni.WithConfListBytes(conf), gocni.WithLoNetwork); err != nil {
		return nil, fmt.Errorf("failed to load network config %q: %w", name, err)
	}
	n := &cniNet{conf: conf, cni: c}
	m.nets[name] = n
	return n, nil
}
