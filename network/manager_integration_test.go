//go:build integration

package network

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	gocni "github.com/containerd/go-cni"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
	"github.com/shoenig/test/must"
)

func TestSetupTeardown_Builtin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.id()
	port := freePort(t, "tcp")
	res := e.setup(t, Request{ID: id, Network: BuiltinNetwork,
		Ports: portMaps(port, 8080, "tcp")})

	// the address is in the subnet, the gateway is the subnet's first one
	subnet := netip.MustParsePrefix(e.net.Subnet)
	ip := netip.MustParseAddr(res.IP)
	must.True(t, subnet.Contains(ip), must.Sprintf("ip %s not in %s", ip, subnet))
	must.Eq(t, subnet.Addr().Next().String(), res.Gateway)
	must.Eq(t, id, res.ID)
	must.Eq(t, BuiltinNetwork, res.Network)
	must.Eq(t, IfName, res.IfName)
	must.Eq(t, e.net.Bridge, res.ConfName)
	must.Eq(t, filepath.Join(e.nsDir, "nomad-"+id), res.NetNSPath)
	must.NoError(t, e.m.Check(ctx, res.Attachment))

	// inside: lo is up, eth0 holds the address, the default route is the gateway
	links := run(t, "nsenter", "--net="+res.NetNSPath, "ip", "-o", "link", "show", "lo")
	must.StrContains(t, links, ",UP")
	addrs := run(t, "nsenter", "--net="+res.NetNSPath, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
	must.StrContains(t, addrs, res.IP+"/")
	routes := run(t, "nsenter", "--net="+res.NetNSPath, "ip", "-4", "route", "show", "default")
	must.StrContains(t, routes, "via "+res.Gateway)

	// outside: a veth on the bridge, the IPAM reservation, the iptables rules
	veths, _ := os.ReadDir(filepath.Join("/sys/class/net", e.net.Bridge, "brif"))
	must.Len(t, 1, veths)
	_, err := os.Stat(ipamFile(e.net.Bridge, res.IP))
	must.NoError(t, err)
	rules := iptablesSave(t)
	must.StrContains(t, rules, `id: \"`+id+`\"`)
	must.StrContains(t, rules, "CNI-DN-")
	must.NotEq(t, 0, len(testbed.NetLeaks(e.scope())))

	e.teardown(t, res.Attachment)
	must.Eq(t, []string(nil), testbed.NetLeaks(e.scope()))
	_, err = os.Stat(res.NetNSPath)
	must.True(t, errors.Is(err, fs.ErrNotExist))
	must.StrNotContains(t, iptablesSave(t), id)
	err = e.m.Check(ctx, res.Attachment)
	must.True(t, errors.Is(err, fs.ErrNotExist), must.Sprintf("check: %v", err))

	// a second teardown is a no-op
	e.teardown(t, res.Attachment)
	must.Eq(t, []string(nil), testbed.NetLeaks(e.scope()))
}

func TestPortMap_TCP(t *testing.T) {
	e := newEnv(t)
	res, hostAddrs := e.portMapped(t, 8080, "tcp")
	listenTCP(t, res.NetNSPath, 8080, "hello tcp")

	for _, addr := range hostAddrs {
		must.Eq(t, "hello tcp", readTCP(t, "", addr))
	}
	// and directly on the task's address
	must.Eq(t, "hello tcp", readTCP(t, "", res.IP+":8080"))
	e.teardown(t, res.Attachment)
}

func TestPortMap_UDP(t *testing.T) {
	e := newEnv(t)
	res, hostAddrs := e.portMapped(t, 5353, "udp")
	listenUDP(t, res.NetNSPath, 5353, "udp:")

	for _, addr := range hostAddrs {
		must.Eq(t, "udp:ping", exchangeUDP(t, addr, "ping"))
	}
	e.teardown(t, res.Attachment)
}

func TestTwoTasksReachEachOther(t *testing.T) {
	e := newEnv(t)
	a := e.setup(t, Request{ID: e.id()})
	b := e.setup(t, Request{ID: e.id()})
	must.NotEq(t, a.IP, b.IP)
	listenTCP(t, a.NetNSPath, 9000, "from a")
	listenTCP(t, b.NetNSPath, 9000, "from b")
	must.Eq(t, "from b", readTCP(t, a.NetNSPath, b.IP+":9000"))
	must.Eq(t, "from a", readTCP(t, b.NetNSPath, a.IP+":9000"))
	e.teardown(t, a.Attachment)
	e.teardown(t, b.Attachment)
}

// portMaps is one mapping of hostPort to port for proto.
// portMapped sets up a task network that maps a free host port to
// port/proto, and returns it with the host's addresses of that port: on
// loopback and on the gateway.
func (e *env) portMapped(t *testing.T, port int, proto string) (*Result, []string) {
	t.Helper()
	hostPort := freePort(t, proto)
	res := e.setup(t, Request{ID: e.id(), Ports: portMaps(hostPort, port, proto)})
	var addrs []string
	for _, host := range []string{"127.0.0.1", res.Gateway} {
		addrs = append(addrs, netip.AddrPortFrom(netip.MustParseAddr(host), uint16(hostPort)).String())
	}
	return res, addrs
}

func portMaps(hostPort, port int, proto string) []gocni.PortMapping {
	return []gocni.PortMapping{{HostPort: int32(hostPort), ContainerPort: int32(port), Protocol: proto}}
}
