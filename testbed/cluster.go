package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
)

// NomadCluster is a Nomad server and client agents that joined it, all on
// 127.0.0.1 in separate processes.
//
// Each agent has its own data dir (and with it Nomad's alloc, state and
// alloc-mounts dirs), ports, node name, CNI conf dir, group bridge name and
// subnet; each client its own dynamic port range and plugin config (point
// it at a containerd, CNI bridge and netns dir of its own). What the clients
// still share is the host: /var/run/netns for Nomad's group namespaces
// (named by alloc ID), /var/lib/cni (keyed by network name and container
// ID), the iptables chains CNI plugins and Nomad share (rules in them name
// a bridge, subnet or container), and on cgroup v1 Nomad's /nomad cgroups
// (the default cgroup_parent, unless NomadConfig.CgroupParent names one of
// the client's own): both clients write the same full core set there, and
// only tasks with reserved cores ever change it.
type NomadCluster struct {
	Server  *Nomad
	Clients []*Nomad
}

// StartNomadCluster starts a server-only agent and, for each of clients, a
// client-only agent joining it, waits until every client's node is ready
// with a healthy containerd driver, and stops them all (clients first) when
// the test ends. The clients' Role, Servers and DynamicPorts are set here.
func StartNomadCluster(t testing.TB, clients ...NomadConfig) *NomadCluster {
	t.Helper()
	if len(clients) == 0 {
		t.Fatal("testbed: a cluster needs at least one client")
	}
	requireNomad(t, clients[0])
	ids := clusterIDs(len(clients) + 1)
	c := &NomadCluster{}
	var err error
	c.Server, err = launchNomad(NomadConfig{Role: NomadServerOnly, PluginDir: clients[0].PluginDir}, LaunchOptions{}, ids[0])
	if err != nil {
		t.Fatalf("testbed: nomad server: %v", err)
	}
	stopAtCleanup(t, "nomad server "+c.Server.NodeName(), c.Server)
	for i, cfg := range clients {
		cfg = clusterClient(cfg, c.Server, i, len(clients))
		n, err := launchNomad(cfg, LaunchOptions{}, ids[i+1])
		if err != nil {
			t.Fatalf("testbed: nomad client %d: %v", i, err)
		}
		stopAtCleanup(t, "nomad client "+n.NodeName(), n)
		c.Clients = append(c.Clients, n)
	}
	return c
}

// clusterClient is cfg for the i-th of count clients joining server: the
// clients split Nomad's default dynamic port range (20000-32000) between
// them, since Nomad only avoids the ports its own node hands out and all
// the clients advertise 127.0.0.1.
func clusterClient(cfg NomadConfig, server *Nomad, i, count int) NomadConfig {
	cfg.Role = NomadClientOnly
	cfg.Servers = []string{server.RPCAddr()}
	width := 12000 / count
	cfg.DynamicPorts = [2]int{20000 + i*width, 20000 + (i+1)*width - 1}
	return cfg
}

// clusterIDs returns n agent ids whose first bytes differ, so that the
// agents' group bridge subnets (see nomadBridge) do too.
func clusterIDs(n int) []string {
	seen := map[byte]bool{}
	var ids []string
	for len(ids) < n {
		var b [3]byte
		_, _ = rand.Read(b[:])
		if !seen[b[0]] {
			seen[b[0]] = true
			ids = append(ids, hex.EncodeToString(b[:]))
		}
	}
	return ids
}

// Client is the client agent whose node is named name.
func (c *NomadCluster) Client(name string) (*Nomad, error) {
	for _, n := range c.Clients {
		if n.NodeName() == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no client agent named %q in the cluster", name)
}
