//go:build integration

package driver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// echoImage holds busybox and ndc-echo, a TCP and UDP echo server.
const echoImage = "docker.io/library/ndc-echo:test"

// netBed is a hermetic containerd plus a CNI network of the test's own:
// bridge, subnet, conf dir and netns dir.
type netBed struct {
	*bed
	cni      *testbed.CNINet
	netnsDir string
	scope    testbed.NetScope
	binDirs  string // cni.bin_dir when not just the reference plugins
}

func newNetBed(t *testing.T) *netBed {
	t.Helper()
	b := newCheckedBed(t)
	testbed.ImportEchoImage(t, b.cd, echoImage)
	n := testbed.NewCNINet(t)
	nb := &netBed{bed: b, cni: n, netnsDir: t.TempDir()}
	nb.scope = n.Scope("", nb.netnsDir)
	testbed.NetLeakCheck(t, nb.scope)
	return nb
}

// pluginHCL points the cni block at the test's network.
func (nb *netBed) pluginHCL(extra string) string {
	binDirs := nb.binDirs
	if binDirs == "" {
		binDirs = nb.cni.BinDir
	}
	return fmt.Sprintf("cni {\n bin_dir = %q\n conf_dir = %q\n bridge_name = %q\n subnet = %q\n netns_dir = %q\n}\n%s",
		binDirs, nb.cni.ConfDir, nb.cni.Bridge, nb.cni.Subnet, nb.netnsDir, extra)
}

// gateway is the bridge's address: the first one of the subnet.
func (nb *netBed) gateway(t *testing.T) string {
	p, err := netip.ParsePrefix(nb.cni.Subnet)
	must.NoError(t, err)
	return p.Addr().Next().String()
}

// freePort is a host port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// echoTask runs ndc-echo on TCP 8080 and UDP 9000 with the given network
// options, with Nomad ports "http" and "dns" allocated to it.
func echoTask(t *testing.T, raw rawTaskConfig, ports ...structs.AllocatedPortMapping) *drivers.TaskConfig {
	raw.Image = echoImage
	raw.Command = "/bin/ndc-echo"
	raw.Args = []string{"-tcp", ":8080", "-udp", ":9000"}
	task := newTask(t, raw)
	ap := structs.AllocatedPorts(ports)
	task.Resources.Ports = &ap
	return task
}

// startNet starts task and returns the DriverNetwork it got.
func startNet(t *testing.T, h *testbed.Harness, task *drivers.TaskConfig) (*drivers.TaskHandle, *drivers.DriverNetwork) {
	t.Helper()
	t.Cleanup(h.MkAllocDir(task, true))
	handle, dnet, err := h.StartTask(task)
	must.NoError(t, err)
	impl := h.Impl()
	t.Cleanup(func() { _ = impl.DestroyTask(task.ID, true) })
	return handle, dnet
}

// talkTCP sends one line to addr and returns the answer line.
func talkTCP(addr, line string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintln(c, line); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// talkUDP sends one datagram to addr and returns the answer.
func talkUDP(addr, msg string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// answers waits until the echo server answers on addr (the task needs a
// moment to listen), then checks the answer.
func answers(t *testing.T, proto, addr string) {
	t.Helper()
	talk := talkTCP
	if proto == "udp" {
		talk = talkUDP
	}
	var got string
	var err error
	eventually(t, proto+" answer from "+addr, func() bool {
		got, err = talk(addr, "ping")
		return err == nil
	})
	must.Eq(t, "echo:ping", strings.TrimSpace(got))
}

// TestDriverNetwork runs tasks on driver-run CNI networks with the real
// reference plugins, a bridge and subnet of the test's own.
func TestDriverNetwork(t *testing.T) {
	testbed.Require(t, true, "iptables", "ip")
	nb := newNetBed(t)
	t.Run("bridge with port maps", func(t *testing.T) { testBridgePorts(t, nb) })
	t.Run("tasks reach each other", func(t *testing.T) { testBridgePeers(t, nb) })
	t.Run("none and host", func(t *testing.T) { testNoneHost(t, nb) })
	t.Run("conflist from conf dir", func(t *testing.T) { testNamedConflist(t, nb) })
	t.Run("failing plugin leaves nothing", func(t *testing.T) { testFailingPlugin(t, nb) })
	t.Run("recover then destroy", func(t *testing.T) { testRecoverNetwork(t, nb) })
}

func testBridgePorts(t *testing.T, nb *netBed) {
	h := nb.harness(t, nb.pluginHCL(""))
	fpCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cniOK, _ := firstFingerprint(fpCtx, t, h).Attributes["driver.containerd.cni"].GetBool()
	must.True(t, cniOK)
	httpPort, dnsPort := freePort(t), freePort(t)
	task := echoTask(t, rawTaskConfig{NetworkMode: "bridge", Ports: []string{"http", "dns"}, Hostname: "echo",
		ExtraHosts: []string{"gw:host-gateway"}, DNSServers: []string{"10.215.0.53"}},
		structs.AllocatedPortMapping{Label: "http", Value: httpPort, To: 8080},
		structs.AllocatedPortMapping{Label: "dns", Value: dnsPort, To: 9000})
	_, dnet := startNet(t, h, task)

	must.NotNil(t, dnet)
	must.True(t, dnet.AutoAdvertise)
	must.Eq(t, map[string]int{"http": 8080, "dns": 9000}, dnet.PortMap)
	ip, err := netip.ParseAddr(dnet.IP)
	must.NoError(t, err)
	must.True(t, netip.MustParsePrefix(nb.cni.Subnet).Contains(ip), must.Sprintf("%s not in %s", ip, nb.cni.Subnet))

	gw := nb.gateway(t)
	answers(t, "tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
	answers(t, "tcp", fmt.Sprintf("%s:%d", gw, httpPort))
	answers(t, "tcp", fmt.Sprintf("%s:8080", dnet.IP))
	answers(t, "udp", fmt.Sprintf("%s:%d", gw, dnsPort))
	answers(t, "udp", fmt.Sprintf("%s:9000", dnet.IP))

	// loopback is up, eth0 holds the address; hosts and resolv.conf say so
	res, err := h.ExecTask(task.ID, []string{"sh", "-c", "ip -o addr show; cat /etc/hosts /etc/resolv.conf"}, 10*time.Second)
	must.NoError(t, err)
	out := string(res.Stdout)
	must.StrContains(t, out, "lo    inet 127.0.0.1/8")
	must.StrContains(t, out, "eth0    inet "+dnet.IP+"/")
	must.StrContains(t, out, dnet.IP+"\techo\n")
	must.StrContains(t, out, gw+"\tgw\n")
	must.StrContains(t, out, "nameserver 10.215.0.53\n")

	st, err := h.InspectTask(task.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, st.State)
	must.NoError(t, h.StopTask(task.ID, 5*time.Second, "SIGKILL"))
	wait(t, h, task.ID, 10*time.Second)
	must.NoError(t, h.DestroyTask(task.ID, true))
	must.SliceEmpty(t, testbed.NetLeaks(nb.scope))
	_, err = talkTCP(fmt.Sprintf("127.0.0.1:%d", httpPort), "ping")
	must.Error(t, err)
}

// testBridgePeers runs two tasks that name no network: the plugin's
// default puts each on the built-in bridge, where they reach each other.
func testBridgePeers(t *testing.T, nb *netBed) {
	h := nb.harness(t, nb.pluginHCL(""))
	server := echoTask(t, rawTaskConfig{})
	_, dnet := startNet(t, h, server)
	must.NotNil(t, dnet)
	client := newTask(t, sh(fmt.Sprintf("for i in 1 2 3 4 5 6 7 8 9 10; do echo hi | nc -w 2 %s 8080 && exit 0; sleep 0.3; done; exit 1", dnet.IP)))
	startNet(t, h, client)
	res := wait(t, h, client.ID, 30*time.Second)
	must.Eq(t, 0, res.ExitCode, must.Sprint(logs(t, client, "stderr")))
	eventually(t, "the answer in the logs", func() bool { return strings.Contains(logs(t, client, "stdout"), "echo:hi") })
}

func testNoneHost(t *testing.T, nb *netBed) {
	h := nb.harness(t, nb.pluginHCL(""))
	none := newTask(t, rawTaskConfig{NetworkMode: "none", Command: "sh", Args: []string{"-c", "ip -o link show; ip -o addr show lo"}})
	_, dnet := startNet(t, h, none)
	must.Nil(t, dnet)
	must.Eq(t, 0, wait(t, h, none.ID, 20*time.Second).ExitCode)
	eventually(t, "logs", func() bool { return strings.Contains(logs(t, none, "stdout"), "inet") })
	out := logs(t, none, "stdout")
	must.StrContains(t, out, "127.0.0.1/8")
	must.StrNotContains(t, out, "eth0")
	must.StrContains(t, out, "LOOPBACK,UP")

	// Roblox's host_network: the host's interfaces, no DriverNetwork
	host := newTask(t, rawTaskConfig{HostNetwork: true, Command: "sh", Args: []string{"-c", "ip -o link show " + nb.cni.Bridge}})
	_, dnet = startNet(t, h, host)
	must.Nil(t, dnet)
	must.Eq(t, 0, wait(t, h, host.ID, 20*time.Second).ExitCode, must.Sprint(logs(t, host, "stderr")))
	eventually(t, "the bridge in the logs", func() bool { return strings.Contains(logs(t, host, "stdout"), nb.cni.Bridge) })
}

func testNamedConflist(t *testing.T, nb *netBed) {
	n2 := testbed.NewCNINet(t)
	scope := testbed.NetScope{Networks: []string{"team"}, Bridges: []string{n2.Bridge}, Subnets: []string{n2.Subnet}, NetNSDirs: []string{nb.netnsDir}}
	testbed.NetLeakCheck(t, scope)
	conf, err := network.DefaultConflist(n2.Bridge, n2.Subnet)
	must.NoError(t, err)
	var list map[string]any
	must.NoError(t, json.Unmarshal(conf, &list))
	list["name"] = "team"
	conf, err = json.Marshal(list)
	must.NoError(t, err)
	must.NoError(t, os.WriteFile(filepath.Join(nb.cni.ConfDir, "10-team.conflist"), conf, 0o644))
	t.Cleanup(func() { _ = os.Remove(filepath.Join(nb.cni.ConfDir, "10-team.conflist")) })

	h := nb.harness(t, nb.pluginHCL(""))
	port := freePort(t)
	task := echoTask(t, rawTaskConfig{Net: []string{"team"}, PortMap: []map[string]string{{"http": "8080/tcp"}}},
		structs.AllocatedPortMapping{Label: "http", Value: port})
	_, dnet := startNet(t, h, task)
	must.NotNil(t, dnet)
	must.True(t, netip.MustParsePrefix(n2.Subnet).Contains(netip.MustParseAddr(dnet.IP)))
	answers(t, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	must.NoError(t, h.StopTask(task.ID, 5*time.Second, "SIGKILL"))
	wait(t, h, task.ID, 10*time.Second)
	must.NoError(t, h.DestroyTask(task.ID, true))
	must.SliceEmpty(t, testbed.NetLeaks(scope))
}

func testFailingPlugin(t *testing.T, nb *netBed) {
	broken := `{"cniVersion":"1.0.0","name":"broken","plugins":[{"type":"ndc-no-such-plugin"}]}`
	must.NoError(t, os.WriteFile(filepath.Join(nb.cni.ConfDir, "20-broken.conflist"), []byte(broken), 0o644))
	t.Cleanup(func() { _ = os.Remove(filepath.Join(nb.cni.ConfDir, "20-broken.conflist")) })
	cases := map[string]rawTaskConfig{
		"plugin missing":     {NetworkMode: "cni/broken"},
		"no such conflist":   {NetworkMode: "cni/nowhere"},
		"unknown port label": {NetworkMode: "bridge", Ports: []string{"admin"}},
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			h := nb.harness(t, nb.pluginHCL(""))
			task := echoTask(t, raw)
			t.Cleanup(h.MkAllocDir(task, true))
			_, _, err := h.StartTask(task)
			must.Error(t, err)
			t.Log(err)
			if name == "plugin missing" {
				must.StrContains(t, err.Error(), "ndc-no-such-plugin")
			}
			must.False(t, nb.containerExists(t, containerID(task.Name, task.AllocID)))
			must.False(t, nb.snapshotExists(t, containerID(task.Name, task.AllocID)))
			must.SliceEmpty(t, testbed.NetLeaks(nb.scope))
			entries, err := os.ReadDir(nb.netnsDir)
			must.NoError(t, err)
			must.SliceEmpty(t, entries)
		})
	}
}

func testRecoverNetwork(t *testing.T, nb *netBed) {
	h := nb.harness(t, nb.pluginHCL(""))
	port := freePort(t)
	task := echoTask(t, rawTaskConfig{NetworkMode: "bridge", Ports: []string{"http"}},
		structs.AllocatedPortMapping{Label: "http", Value: port, To: 8080})
	handle, _ := startNet(t, h, task)
	answers(t, "tcp", fmt.Sprintf("127.0.0.1:%d", port))

	h.Kill()
	h2 := nb.harness(t, nb.pluginHCL(""))
	must.NoError(t, h2.RecoverTask(handle))
	answers(t, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	must.NoError(t, h2.DestroyTask(task.ID, true))
	must.SliceEmpty(t, testbed.NetLeaks(nb.scope))
	must.ErrorIs(t, h2.Impl().DestroyTask(task.ID, true), drivers.ErrTaskNotFound)
}
