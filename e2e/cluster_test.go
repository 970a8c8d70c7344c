//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// clusterJob is the job in example-jobs/cluster-spread.nomad.hcl.
const clusterJob = "cluster-spread"

// clusterNode is a client node: its Nomad agent and the containerd, CNI
// bridge, subnet and netns dir of its own that its plugin uses.
type clusterNode struct {
	agent *testbed.Nomad
	id    string // Nomad's node ID
	cd    *testbed.Containerd
	cni   *testbed.CNINet
	netns string
}

func newClusterNode(t *testing.T) *clusterNode {
	t.Helper()
	n := &clusterNode{cd: testbed.StartContainerd(t)}
	testbed.LeakCheck(t, n.cd)
	n.cni = testbed.NewCNINet(t)
	n.netns = t.TempDir()
	testbed.NetLeakCheck(t, n.scope())
	return n
}

func (n *clusterNode) scope() testbed.NetScope { return n.cni.Scope("", n.netns) }

func (n *clusterNode) pluginConfig() string {
	return testbed.ContainerdPluginConfig(n.cd) + n.cni.PluginBlock(n.netns)
}

// leftovers is what the node's containerd namespace and task networks
// still hold: containers, tasks, leases, snapshots other than image layers,
// shims, netns files, veths, address reservations, iptables rules.
func (n *clusterNode) leftovers() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return append(testbed.Leaks(ctx, n.cd), testbed.NetLeaks(n.scope())...)
}

// taskPID is the PID of an allocation's task on this node's containerd.
func (n *clusterNode) taskPID(t *testing.T, allocID string) uint32 {
	t.Helper()
	return (&env{cd: n.cd}).taskPID(t, "web", allocID)
}

// cluster is a Nomad server and two client nodes; e runs the CLI against
// the server.
type cluster struct {
	e     *env
	nodes []*clusterNode
	image string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc", "nomad", "docker-registry")
	reg := testbed.StartRegistry(t)
	img, err := testbed.BuildBusybox()
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = img.Push(ctx, reg.Host, "demo/busybox:1")
	must.NoError(t, err)

	c := &cluster{nodes: []*clusterNode{newClusterNode(t), newClusterNode(t)}, image: reg.Host + "/demo/busybox:1"}
	var cfgs []testbed.NomadConfig
	for _, n := range c.nodes {
		cfgs = append(cfgs, testbed.NomadConfig{PluginConfig: n.pluginConfig()})
	}
	nc := testbed.StartNomadCluster(t, cfgs...)
	c.e = &env{nomad: nc.Server, image: c.image}
	for i, n := range c.nodes {
		n.agent = nc.Clients[i]
		nodes, _, err := c.api().Nodes().List(&api.QueryOptions{Filter: fmt.Sprintf("Name == %q", n.agent.NodeName())})
		must.NoError(t, err)
		must.SliceLen(t, 1, nodes, must.Sprintf("node %s not registered with the server", n.agent.NodeName()))
		n.id = nodes[0].ID
	}
	return c
}

func (c *cluster) api() *api.Client { return c.e.nomad.API() }

// node is the client node with the given Nomad node ID.
func (c *cluster) node(t *testing.T, id string) *clusterNode {
	t.Helper()
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	t.Fatalf("node %s is not one of the cluster's clients", id)
	return nil
}

// eventually retries cond, which says what is still missing ("" once
// done), until timeout, then fails with what was missing last.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	var missing string
	if !testbed.Poll(timeout, 250*time.Millisecond, func() bool {
		missing = cond()
		return missing == ""
	}) {
		t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, missing)
	}
}

// runJob submits the job. When the test ends the job is stopped and, once
// no node holds anything of it, purged: a failed test still leaves nothing
// behind (the client agents, stopped next, would leave their tasks
// running).
func (c *cluster) runJob(t *testing.T) {
	t.Helper()
	c.e.cli(t, "job", "run", "-detach", "-var", "image="+c.image,
		filepath.Join(testbed.RepoRoot(), "example-jobs", "cluster-spread.nomad.hcl"))
	t.Cleanup(func() {
		jobs := c.api().Jobs()
		if _, _, err := jobs.Deregister(clusterJob, false, nil); err == nil {
			testbed.Poll(time.Minute, 250*time.Millisecond, func() bool {
				for _, n := range c.nodes {
					if len(n.leftovers()) > 0 {
						return false
					}
				}
				return true
			})
		}
		_, _, _ = jobs.Deregister(clusterJob, true, nil)
	})
}

// running waits until the job has want running allocations and no other
// allocation meant to run, and returns them.
func (c *cluster) running(t *testing.T, want int) []*api.AllocationListStub {
	t.Helper()
	var allocs []*api.AllocationListStub
	eventually(t, 2*time.Minute, fmt.Sprintf("%d running allocations of %s", want, clusterJob), func() string {
		stubs, _, err := c.api().Jobs().Allocations(clusterJob, false, nil)
		if err != nil {
			return err.Error()
		}
		allocs = allocs[:0]
		var other []string
		for _, s := range stubs {
			switch {
			case s.ClientStatus == api.AllocClientStatusFailed:
				t.Fatalf("allocation %s failed on %s:\n%s", s.ID, s.NodeName, c.e.cli(t, "alloc", "status", s.ID))
			case s.DesiredStatus != api.AllocDesiredStatusRun:
			case s.ClientStatus == api.AllocClientStatusRunning:
				allocs = append(allocs, s)
			default:
				other = append(other, fmt.Sprintf("%s %s on %s", s.ID[:8], s.ClientStatus, s.NodeName))
			}
		}
		if len(allocs) != want || len(other) > 0 {
			return fmt.Sprintf("running %v, not running %v", placement(allocs), other)
		}
		return ""
	})
	return allocs
}

// placement is node name -> IDs of the allocations on it.
func placement(allocs []*api.AllocationListStub) map[string][]string {
	out := map[string][]string{}
	for _, a := range allocs {
		out[a.NodeName] = append(out[a.NodeName], a.ID)
	}
	for _, ids := range out {
		sort.Strings(ids)
	}
	return out
}

// checkSpreadScored checks that the job's spread, and not only Nomad's
// job anti-affinity (which alone also splits four allocations over two
// equal nodes), scored the placements: every placement after the first
// has an allocation-spread score (the first too, when another evaluation
// placed it).
func (c *cluster) checkSpreadScored(t *testing.T, allocs []*api.AllocationListStub) {
	t.Helper()
	scored := 0
	for _, s := range allocs {
		a, _, err := c.api().Allocations().Info(s.ID, nil)
		must.NoError(t, err)
		if a.Metrics == nil {
			continue
		}
		for _, m := range a.Metrics.ScoreMetaData {
			if _, ok := m.Scores["allocation-spread"]; ok {
				scored++
				break
			}
		}
	}
	must.GreaterEq(t, len(allocs)-1, scored, must.Sprint("placements scored by the job's spread (allocation-spread)"))
}

// checkContainers checks that each allocation's container runs on the
// containerd of its node, and on no other.
func (c *cluster) checkContainers(t *testing.T, allocs []*api.AllocationListStub) {
	t.Helper()
	for _, a := range allocs {
		for _, n := range c.nodes {
			_, err := n.cd.Client.LoadContainer(n.cd.Context(), "web-"+a.ID)
			if mine := n.id == a.NodeID; mine != (err == nil) {
				t.Fatalf("allocation %s placed on %s: container in the containerd of %s: %v (%v)",
					a.ID, a.NodeName, n.agent.NodeName(), err == nil, err)
			}
		}
	}
}

// checkServices waits until each of the job's services has one
// registration per allocation, then reads from every registration's
// address and port the answer of its allocation: the container's address
// on its node's subnet (cluster-web), and the port Nomad mapped on
// 127.0.0.1 from its node's dynamic range (cluster-web-host).
func (c *cluster) checkServices(t *testing.T, allocs []*api.AllocationListStub) {
	t.Helper()
	want := map[string]*api.AllocationListStub{}
	for _, a := range allocs {
		want[a.ID] = a
	}
	for _, svc := range []string{"cluster-web", "cluster-web-host"} {
		var regs []*api.ServiceRegistration
		eventually(t, time.Minute, "the registrations of "+svc, func() string {
			var err error
			if regs, _, err = c.api().Services().Get(svc, nil); err != nil {
				return err.Error()
			}
			var got []string
			for _, r := range regs {
				got = append(got, r.AllocID)
			}
			sort.Strings(got)
			if len(got) != len(want) || !allIn(got, want) {
				return fmt.Sprintf("registered for allocations %v, want %v", got, placement(allocs))
			}
			return ""
		})
		for _, r := range regs {
			a := want[r.AllocID]
			must.Eq(t, a.NodeID, r.NodeID, must.Sprintf("%s of allocation %s registered by another node", svc, a.ID))
			n := c.node(t, r.NodeID)
			if svc == "cluster-web" {
				ip, err := netip.ParseAddr(r.Address)
				must.NoError(t, err)
				must.True(t, netip.MustParsePrefix(n.cni.Subnet).Contains(ip),
					must.Sprintf("%s of %s advertises %s, not in %s's subnet %s", svc, a.ID, ip, a.NodeName, n.cni.Subnet))
				must.Eq(t, 8080, r.Port)
			} else {
				must.Eq(t, "127.0.0.1", r.Address)
				ports := n.agent.Config.DynamicPorts
				must.True(t, r.Port >= ports[0] && r.Port <= ports[1],
					must.Sprintf("%s of %s advertises port %d, not in %s's range %v", svc, a.ID, r.Port, a.NodeName, ports))
			}
			body := get(t, fmt.Sprintf("http://%s/", net.JoinHostPort(r.Address, fmt.Sprint(r.Port))))
			must.Eq(t, fmt.Sprintf("hello from %s on %s\n", a.ID, a.NodeName), body,
				must.Sprintf("%s at %s:%d", svc, r.Address, r.Port))
		}
	}
}

func allIn(ids []string, set map[string]*api.AllocationListStub) bool {
	for _, id := range ids {
		if set[id] == nil {
			return false
		}
	}
	return true
}

// TestCluster runs example-jobs/cluster-spread.nomad.hcl on a Nomad server
// and two client agents, each client with the plugin, a containerd and a CNI
// bridge and subnet of its own: the job spreads two tasks on each client,
// every task answers at the address its service registration advertises, a
// client killed with SIGKILL comes back with its tasks untouched, and a
// drained client hands its tasks to the other and keeps nothing.
func TestCluster(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	c.runJob(t)

	allocs := c.running(t, 4)
	for _, n := range c.nodes {
		if got := placement(allocs)[n.agent.NodeName()]; len(got) != 2 {
			t.Fatalf("spread: want 2 allocations on each client, got %v", placement(allocs))
		}
	}
	c.checkSpreadScored(t, allocs)
	c.checkContainers(t, allocs)
	c.checkServices(t, allocs)

	t.Run("client killed and restarted", func(t *testing.T) { testClientRestart(t, c, allocs) })
	t.Run("drain", func(t *testing.T) { testDrain(t, c) })

	c.e.stopJob(t, clusterJob)
	for _, n := range c.nodes {
		eventually(t, time.Minute, "nothing left on "+n.agent.NodeName()+" after the job stopped", func() string {
			return strings.Join(n.leftovers(), "; ")
		})
	}
	t.Logf("cluster e2e took %s", time.Since(began).Round(time.Second))
}

// testClientRestart SIGKILLs the second client's agent and starts it again:
// its allocations are the same, with the same container PIDs, no restart,
// and the restarted agent reaches them through the plugin again.
func testClientRestart(t *testing.T, c *cluster, allocs []*api.AllocationListStub) {
	n := c.nodes[1]
	pids := map[string]uint32{}
	for _, a := range allocs {
		if a.NodeID == n.id {
			pids[a.ID] = n.taskPID(t, a.ID)
		}
	}
	must.MapLen(t, 2, pids)

	n.agent.Kill()
	must.NoError(t, n.agent.Restart())

	after := c.running(t, 4)
	must.Eq(t, placement(allocs), placement(after), must.Sprint("allocations replaced after the client restart"))
	for id, pid := range pids {
		// exec goes through the restarted agent to the task handle it
		// recovered from the plugin: the recovery is done
		out := c.e.cli(t, "alloc", "exec", "-task", "web", id, "cat", "/tmp/www/index.html")
		must.Eq(t, fmt.Sprintf("hello from %s on %s\n", id, n.agent.NodeName()), out)
		must.Eq(t, pid, n.taskPID(t, id), must.Sprintf("task of %s has another PID after the client restart", id))
		a, _, err := c.api().Allocations().Info(id, nil)
		must.NoError(t, err)
		ts := a.TaskStates["web"]
		must.NotNil(t, ts)
		for _, ev := range ts.Events {
			must.NotEq(t, api.TaskRestarting, ev.Type, must.Sprintf("task of %s restarted after the client restart: %s", id, ev.DisplayMessage))
		}
		must.Eq(t, uint64(0), ts.Restarts)
	}
	c.checkServices(t, after)
}

// testDrain drains the first client: its allocations move to the second
// and nothing of them is left on the first.
func testDrain(t *testing.T, c *cluster) {
	drained, other := c.nodes[0], c.nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// without -detach the command returns once the drain is complete
	out, err := c.e.nomad.Command(ctx, "node", "drain", "-enable", "-yes", "-deadline", "2m", drained.id).CombinedOutput()
	must.NoError(t, err, must.Sprintf("nomad node drain:\n%s", out))

	node, _, err := c.api().Nodes().Info(drained.id, nil)
	must.NoError(t, err)
	must.Nil(t, node.DrainStrategy, must.Sprintf("drain of %s not complete:\n%s", drained.id, out))
	must.Eq(t, api.NodeSchedulingIneligible, node.SchedulingEligibility)

	allocs := c.running(t, 4)
	if got := placement(allocs); len(got) != 1 || len(got[other.agent.NodeName()]) != 4 {
		t.Fatalf("drain: want all 4 allocations on %s, got %v", other.agent.NodeName(), got)
	}
	left, _, err := c.api().Nodes().Allocations(drained.id, nil)
	must.NoError(t, err)
	must.SliceLen(t, 2, left, must.Sprint("the drained node should have had two allocations"))
	for _, a := range left {
		must.True(t, a.ClientTerminalStatus(), must.Sprintf("allocation %s still %s on the drained node", a.ID, a.ClientStatus))
	}
	eventually(t, 30*time.Second, "nothing left on the drained node "+drained.agent.NodeName(), func() string {
		return strings.Join(drained.leftovers(), "; ")
	})
	c.checkContainers(t, allocs)
	c.checkServices(t, allocs)
}
