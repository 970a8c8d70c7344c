package testbed

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PluginBinary is the file `make build` writes into bin/.
const PluginBinary = "nomad-driver-containerd"

// PluginName is the driver's name (jobs say driver = "containerd") and the
// label of its agent config block, plugin "containerd" { ... }. Nomad only
// loads a plugin whose executable in plugin_dir is named like that label, so
// the agent's own plugin dir holds a link "containerd" to the binary.
const PluginName = "containerd"

// FingerprintDenylist keeps the agent off the network: the cloud metadata
// fingerprinters and Consul's.
const FingerprintDenylist = "env_aws,env_gce,env_azure,env_digitalocean,consul"

// NomadConfig is what a test agent is started with.
type NomadConfig struct {
	PluginDir    string // holds nomad-driver-containerd; default RepoRoot()/bin
	PluginConfig string // HCL body of the plugin's `config { }` block
	DataDir      string // default: a new temp dir, removed by Stop
	Extra        string // more agent HCL, appended as is
	// Plugins are more plugin executables (device plugins) linked into
	// the agent's plugin dir under their file names; configure them in
	// Extra with plugin "<file name>" { config { ... } }.
	Plugins []string

	// Role is what the agent runs; the default is a server and a client in
	// one process, a cluster of its own.
	Role NomadRole
	// Servers are the RPC addresses (host:port) a NomadClientOnly agent
	// joins.
	Servers []string
	// DynamicPorts is the client's min and max dynamic port; zero leaves
	// Nomad's default (20000-32000). Clients on one host need ranges of
	// their own: each only knows the ports its own allocations hold.
	DynamicPorts [2]int
	// CgroupParent, when set, is the client's cgroup_parent (Nomad's
	// default is /nomad, which every agent on the host shares): the parent
	// of the cpuset cgroups it keeps for reserved and shared cores. Stop
	// removes it.
	CgroupParent string
	// DriverDenylist is the client's driver.denylist; empty means
	// DefaultDriverDenylist.
	DriverDenylist string
}

// DefaultDriverDenylist keeps the agent's built-in drivers that need
// daemons or runtimes the test bed does not start off.
const DefaultDriverDenylist = "docker,java,qemu"

// NomadRole says whether an agent runs a server, a client or both.
type NomadRole int

const (
	NomadServerAndClient NomadRole = iota // one agent, its own cluster
	NomadServerOnly                       // a server that bootstraps alone
	NomadClientOnly                       // a client joining NomadConfig.Servers
)

// NomadPorts are the agent's TCP ports on 127.0.0.1.
type NomadPorts struct{ HTTP, RPC, Serf int }

// FreeNomadPorts picks three free ports.
func FreeNomadPorts() (NomadPorts, error) {
	var p [3]int
	for i := range p {
		for {
			port, err := FreePort()
			if err != nil {
				return NomadPorts{}, err
			}
			if i == 0 || (port != p[0] && port != p[1]) {
				p[i] = port
				break
			}
		}
	}
	return NomadPorts{HTTP: p[0], RPC: p[1], Serf: p[2]}, nil
}

// NomadAgentConfig is the agent config: server and client in one process on
// 127.0.0.1, the cloud fingerprinters and the update check off, plugin_dir
// set to pluginDir (which holds the plugin as PluginName, see
// LinkPlugin) configured with cfg.PluginConfig, and Nomad's bridge
// network on its own name and subnet (from id, a few hex digits) with its own
// CNI conf dir.
func NomadAgentConfig(cfg NomadConfig, pluginDir string, ports NomadPorts, id string) string {
	return nomadAgentConfig(cfg, pluginDir, ports, id, true)
}

func nomadAgentConfig(cfg NomadConfig, pluginDir string, ports NomadPorts, id string, client bool) string {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	bridge, subnet := nomadBridge(id)
	server := "enabled          = true\n  bootstrap_expect = 1"
	if cfg.Role == NomadClientOnly {
		server = "enabled = false"
	}
	client = client && cfg.Role != NomadServerOnly
	return fmt.Sprintf(`name                 = %s
data_dir             = %s
plugin_dir           = %s
bind_addr            = "127.0.0.1"
log_level            = "DEBUG"
disable_update_check = true

ports {
  http = %d
  rpc  = %d
  serf = %d
}

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

server {
  %s
}

client {
  enabled               = %t%s
  network_interface     = "lo"
  cni_path              = %s
  cni_config_dir        = %s
  bridge_network_name   = %s
  bridge_network_subnet = %s
  options {
    "fingerprint.denylist" = %s
    "driver.denylist"      = %s
  }
}

plugin %s {
  config {
%s
  }
}
%s
`, q("ndc-"+id), q(cfg.DataDir), q(pluginDir), ports.HTTP, ports.RPC, ports.Serf,
		server, client, clientJoin(cfg), q(CNIBinDir()), q(filepath.Join(cfg.DataDir, "cni")), q(bridge), q(subnet),
		q(FingerprintDenylist), q(cmp.Or(cfg.DriverDenylist, DefaultDriverDenylist)), q(PluginName), indent(cfg.PluginConfig, "    "), cfg.Extra)
}

// clientJoin is the client block's lines for cfg.Servers,
// cfg.CgroupParent and cfg.DynamicPorts.
func clientJoin(cfg NomadConfig) string {
	var b strings.Builder
	if len(cfg.Servers) > 0 {
		qs := make([]string, len(cfg.Servers))
		for i, s := range cfg.Servers {
			qs[i] = fmt.Sprintf("%q", s)
		}
		fmt.Fprintf(&b, "\n  servers               = [%s]", strings.Join(qs, ", "))
	}
	if cfg.CgroupParent != "" {
		fmt.Fprintf(&b, "\n  cgroup_parent         = %q", cfg.CgroupParent)
	}
	if cfg.DynamicPorts != [2]int{} {
		fmt.Fprintf(&b, "\n  min_dynamic_port      = %d\n  max_dynamic_port      = %d", cfg.DynamicPorts[0], cfg.DynamicPorts[1])
	}
	return b.String()
}

func indent(s, pre string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			lines[i] = pre + strings.TrimSpace(l)
		}
	}
	return strings.Join(lines, "\n")
}

// LinkPlugin makes pluginDir hold a link named PluginName to the plugin
// binary in binDir.
func LinkPlugin(binDir, pluginDir string) error {
	bin, err := filepath.Abs(filepath.Join(binDir, PluginBinary))
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("plugin binary missing (`make build`): %w", err)
	}
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return err
	}
	link := filepath.Join(pluginDir, PluginName)
	_ = os.Remove(link)
	return os.Symlink(bin, link)
}

// ContainerdPluginConfig is the plugin config body pointing at cd.
func ContainerdPluginConfig(cd *Containerd) string {
	return fmt.Sprintf("address   = %q\nnamespace = %q\n", cd.Address, cd.Namespace)
}

// Reconfigure restarts the agent (same data dir, ports and plugin dir)
// with another plugin config body and extra HCL, and waits until it is ready.
func (n *Nomad) Reconfigure(pluginConfig, extra string) error {
	n.mu.Lock()
	n.Config.PluginConfig, n.Config.Extra = pluginConfig, extra
	conf := nomadAgentConfig(n.Config, filepath.Join(n.Dir, "plugins"), n.Ports, n.id, true)
	n.mu.Unlock()
	if err := os.WriteFile(filepath.Join(n.Dir, "agent.hcl"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("failed to write agent config: %w", err)
	}
	return n.Restart()
}
