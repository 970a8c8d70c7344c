package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

func TestParseNetworkConfig(t *testing.T) {
	cases := []struct {
		name, body string
		mode       string
		err        string
	}{
		{name: "none given", body: ``, mode: ""},
		{name: "network_mode bridge", body: `network_mode = "bridge"`, mode: "bridge"},
		{name: "network_mode cni", body: `network_mode = "cni/mynet"`, mode: "cni/mynet"},
		{name: "host_network", body: `host_network = true`, mode: "host"},
		{name: "host_network agrees", body: "host_network = true\nnetwork_mode = \"host\"", mode: "host"},
		{name: "rkt net default", body: `net = ["default"]`, mode: "bridge"},
		{name: "rkt net name", body: `net = ["mynet"]`, mode: "cni/mynet"},
		{name: "rkt net none", body: `net = ["none"]`, mode: "none"},
		{name: "bad mode", body: `network_mode = "overlay"`, err: `network_mode: "overlay" is not`},
		{name: "empty cni name", body: `network_mode = "cni/"`, err: `network_mode: "cni/" is not`},
		{name: "bad cni name", body: `network_mode = "cni/a b"`, err: `network_mode: "cni/a b" is not`},
		{name: "host_network conflicts", body: "host_network = true\nnetwork_mode = \"bridge\"", err: `host_network: asks for network "host" but the task's network mode is already "bridge"`},
		{name: "two rkt nets", body: `net = ["a", "b"]`, err: `net: ["a" "b"] names 2 networks`},
		{name: "bad dns server", body: `dns_servers = ["dns.example"]`, err: `dns_servers: "dns.example" is not an IP address`},
		{name: "bad extra host", body: `extra_hosts = ["nocolon"]`, err: `extra_hosts: entry "nocolon"`},
		{name: "port_map twice", body: "port_map = [{ http = \"80\" }, { http = \"81\" }]", err: `port_map: "http" is given twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nc, err := parseNetworkConfig(decodeTaskHCL(t, "image = \"busybox:1\"\n"+c.body).network())
			if !parsed(t, err, c.err) {
				return
			}
			must.Eq(t, c.mode, nc.Mode.String())
		})
	}
}

func TestParseNetworkConfig_DNS(t *testing.T) {
	nc, err := parseNetworkConfig(decodeTaskHCL(t, `image = "x"
dns_servers = ["10.0.0.2", "fd00::2"]
dns_search_domains = ["svc.example"]
dns_options = ["ndots:2"]
extra_hosts = ["db:10.0.0.9", "gw:host-gateway"]
port_map { http = 8080 }`).network())
	must.NoError(t, err)
	must.Eq(t, network.DNS{Servers: []string{"10.0.0.2", "fd00::2"}, Searches: []string{"svc.example"}, Options: []string{"ndots:2"}}, nc.DNS)
	must.True(t, nc.HostDNS)
	must.Eq(t, map[string]string{"http": "8080"}, nc.PortMap)
	must.Eq(t, []network.HostEntry{{Name: "db", IP: "10.0.0.9"}, {Name: "gw", IP: network.HostGateway}}, nc.ExtraHosts)

	nc, err = parseNetworkConfig(decodeTaskHCL(t, "image = \"x\"\ndns_servers = [\"none\"]\nhost_dns = false").network())
	must.NoError(t, err)
	must.True(t, nc.NoDNS)
	must.False(t, nc.HostDNS)
	nc, err = parseNetworkConfig(decodeTaskHCL(t, "image = \"x\"\ndns_servers = [\"host\"]").network())
	must.NoError(t, err)
	must.False(t, nc.NoDNS)
	must.Nil(t, nc.DNS.Servers)
}

func TestPlanNetwork(t *testing.T) {
	ports := structs.AllocatedPorts{{Label: "http", Value: 25000, To: 8080, HostIP: "127.0.0.1"}}
	group := &drivers.NetworkIsolationSpec{Mode: drivers.NetIsolationModeGroup, Path: "/var/run/netns/g"}
	cases := []struct {
		name, plugin, body string
		iso                *drivers.NetworkIsolationSpec
		mode               string
		portMap            map[string]int
		err                string
	}{
		{name: "default is the built-in bridge", mode: "bridge"},
		{name: "plugin default host", plugin: `default_network_mode = "host"`, mode: "host"},
		{name: "plugin default bridge", plugin: `default_network_mode = "bridge"`, mode: "bridge"},
		{name: "group wins", plugin: `default_network_mode = "bridge"`, iso: group, mode: "group"},
		{name: "bridge with ports", body: "network_mode = \"bridge\"\nports = [\"http\"]", mode: "bridge", portMap: map[string]int{"http": 8080}},
		{name: "cni with port_map", body: "network_mode = \"cni/x\"\nport_map { http = 9090 }", mode: "cni/x", portMap: map[string]int{"http": 9090}},
		{name: "ports on the default network", body: `ports = ["http"]`, mode: "bridge", portMap: map[string]int{"http": 8080}},
		{name: "ports on host", body: "network_mode = \"host\"\nports = [\"http\"]", err: `port maps are not allowed with network mode "host"`},
		{name: "ports on none", body: "network_mode = \"none\"\nports = [\"http\"]", err: `network mode "none"`},
		{name: "ports in group", iso: group, body: `ports = ["http"]`, err: `network mode "group"`},
		{name: "mode in group", iso: group, body: `network_mode = "bridge"`, err: `network_mode: "bridge" cannot be used when the task group has its own network namespace`},
		{name: "unknown label", body: "network_mode = \"bridge\"\nports = [\"admin\"]", err: `"admin"`},
		{name: "host-gateway on host", body: "network_mode = \"host\"\nextra_hosts = [\"gw:host-gateway\"]", err: "host-gateway needs a task network with a gateway"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf, err := parseConfig(decodePluginHCL(t, c.plugin))
			must.NoError(t, err)
			cfg := testTask(t)
			cfg.NetworkIsolation = c.iso
			cfg.Resources = &drivers.Resources{Ports: &ports}
			p, err := planFor(t, conf, cfg, c.body)
			if !parsed(t, err, c.err) {
				return
			}
			must.Eq(t, c.mode, p.net.String())
			must.Eq(t, c.mode == "host", p.spec.HostNetwork)
			if c.portMap != nil {
				must.Eq(t, c.portMap, p.ports.PortMap)
			}
		})
	}
}

func TestNetworkFiles(t *testing.T) {
	res := &network.Result{
		Attachment: network.Attachment{IP: "10.215.0.5", Gateway: "10.215.0.1"},
		DNS:        network.DNS{Servers: []string{"10.215.0.1"}, Searches: []string{"cni.example"}},
	}
	cases := []struct {
		name, body string
		mode       netMode
		res        *network.Result
		nomadDNS   *drivers.DNSConfig
		hosts      []string // lines the hosts file holds
		resolv     []string // lines resolv.conf holds; nil = not mounted
	}{
		{
			name: "cni address, cni dns, extra hosts", mode: netMode{kind: netCNI, cni: "bridge"}, res: res,
			body:   "hostname = \"web\"\nextra_hosts = [\"db:10.0.0.9\", \"gw:host-gateway\"]",
			hosts:  []string{"10.215.0.5\tweb", "10.0.0.9\tdb", "10.215.0.1\tgw", "127.0.0.1\tlocalhost"},
			resolv: []string{"nameserver 10.215.0.1", "search cni.example"},
		},
		{
			name: "task dns over nomad dns over cni", mode: netMode{kind: netCNI, cni: "bridge"}, res: res,
			nomadDNS: &drivers.DNSConfig{Servers: []string{"10.9.9.9"}, Options: []string{"ndots:3"}},
			body:     `dns_search_domains = ["task.example"]`,
			resolv:   []string{"nameserver 10.9.9.9", "search task.example", "options ndots:3"},
		},
		{
			name: "rkt none: no nameserver", mode: netMode{kind: netHost},
			body: `dns_servers = ["none"]`, resolv: []string{},
		},
		{
			name: "host_dns false: image's own", mode: netMode{kind: netHost},
			body: `host_dns = false`,
		},
		{
			name: "host_dns false with servers", mode: netMode{kind: netNone},
			body: "host_dns = false\ndns_servers = [\"10.1.1.1\"]", resolv: []string{"nameserver 10.1.1.1"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testTask(t)
			cfg.DNS = c.nomadDNS
			tc, err := parseTaskConfig(decodeTaskHCL(t, "image = \"busybox:1\"\n"+c.body))
			must.NoError(t, err)
			var p pins
			defer p.close()
			ms, err := networkFiles(cfg, tc, c.mode, c.res, &p)
			must.NoError(t, err)
			dir := cfg.TaskDir().Dir
			hosts, err := os.ReadFile(filepath.Join(dir, "hosts"))
			must.NoError(t, err)
			for _, l := range c.hosts {
				must.StrContains(t, string(hosts), l+"\n")
			}
			if c.resolv == nil {
				must.Len(t, 1, ms) // /etc/hosts only
				return
			}
			must.Len(t, 2, ms)
			must.Eq(t, "/etc/resolv.conf", ms[1].Destination)
			resolv, err := os.ReadFile(ms[1].Source)
			must.NoError(t, err)
			for _, l := range c.resolv {
				must.StrContains(t, string(resolv), l+"\n")
			}
			if len(c.resolv) == 0 {
				must.StrNotContains(t, string(resolv), "nameserver")
			}
		})
	}
}

// A symlink the task left at the hosts file's name (it can bind its task
// directory through "..") is replaced, not written through.
func TestNetworkFilesDoNotFollowSymlinks(t *testing.T) {
	cfg := testTask(t)
	host := filepath.Join(t.TempDir(), "canary")
	must.NoError(t, os.WriteFile(host, []byte("host file\n"), 0o644))
	dir := cfg.TaskDir().Dir
	must.NoError(t, os.Symlink(host, filepath.Join(dir, "hosts")))
	must.NoError(t, os.Symlink(host, filepath.Join(dir, "resolv.conf")))
	tc, err := parseTaskConfig(decodeTaskHCL(t, "image = \"busybox:1\"\ndns_servers = [\"10.1.1.1\"]"))
	must.NoError(t, err)
	var p pins
	defer p.close()
	ms, err := networkFiles(cfg, tc, netMode{kind: netNone}, nil, &p)
	must.NoError(t, err)
	got, err := os.ReadFile(host)
	must.NoError(t, err)
	must.Eq(t, "host file\n", string(got))
	must.Len(t, 2, p.binds)
	for _, m := range ms {
		real := m.Source
		must.StrHasPrefix(t, dir+"/", real)
		st, err := os.Lstat(real)
		must.NoError(t, err)
		must.True(t, st.Mode().IsRegular())
	}
	entries, err := os.ReadDir(dir)
	must.NoError(t, err)
	for _, e := range entries {
		must.StrNotContains(t, e.Name(), ".tmp") // no temporary file left
	}
}
