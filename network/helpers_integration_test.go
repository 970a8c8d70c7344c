//go:build integration

package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
	"github.com/shoenig/test/must"
)

// env is one test's network setup: its own bridge, subnet, conf dir and
// netns dir, a Manager over them, and a leak check at the end.
type env struct {
	net    *testbed.CNINet
	m      *Manager
	nsDir  string
	prefix string // every task ID of the test starts with it
	seq    int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testbed.Require(t, true, "iptables", "iptables-save", "ip", "nsenter")
	n := testbed.NewCNINet(t)
	for _, p := range RequiredPlugins {
		if _, err := os.Stat(filepath.Join(n.BinDir, p)); err != nil && testbed.InCI() {
			t.Fatalf("CNI plugin %s missing in %s (run `make deps`)", p, n.BinDir)
		} else if err != nil {
			t.Skipf("CNI plugin %s missing in %s (run `make deps`)", p, n.BinDir)
		}
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := &env{net: n, nsDir: t.TempDir(), prefix: "ndct" + hex.EncodeToString(b[:])}
	m, err := New(Config{
		BinDirs: []string{n.BinDir}, ConfDir: n.ConfDir,
		BridgeName: n.Bridge, Subnet: n.Subnet, NetNSDir: e.nsDir,
	}, hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testbed.TestLog(t)}))
	must.NoError(t, err)
	e.m = m
	testbed.NetLeakCheck(t, e.scope())
	return e
}

// scope is what the leak check looks at; extra networks (named conflists)
// are added by the tests that make them.
func (e *env) scope(extraNetworks ...string) testbed.NetScope {
	s := e.net.Scope(e.prefix, e.nsDir)
	s.Networks = append(s.Networks, extraNetworks...)
	return s
}

// id returns a fresh task ID.
func (e *env) id() string {
	e.seq++
	return fmt.Sprintf("%s-task-%d", e.prefix, e.seq)
}

func (e *env) setup(t *testing.T, req Request) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := e.m.Setup(ctx, req)
	must.NoError(t, err)
	t.Cleanup(func() { _ = e.m.Teardown(context.Background(), res.Attachment) })
	return res
}

func (e *env) teardown(t *testing.T, a Attachment) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must.NoError(t, e.m.Teardown(ctx, a))
}

// listenIn opens a listener with listen in the netns at path; it closes
// when the test ends.
func listenIn[L io.Closer](t *testing.T, path string, listen func() (L, error)) L {
	t.Helper()
	var l L
	must.NoError(t, inNetNS(path, func() (err error) {
		l, err = listen()
		return err
	}))
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// listenTCP starts a TCP server in the netns at path that writes greeting
// to every connection; it stops when the test ends.
func listenTCP(t *testing.T, path string, port int, greeting string) {
	t.Helper()
	ln := listenIn(t, path, func() (net.Listener, error) { return net.Listen("tcp", fmt.Sprintf(":%d", port)) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(greeting))
			_ = c.Close()
		}
	}()
}

// listenUDP starts a UDP server in the netns at path that answers every
// datagram with greeting + the datagram.
func listenUDP(t *testing.T, path string, port int, greeting string) {
	t.Helper()
	pc := listenIn(t, path, func() (net.PacketConn, error) { return net.ListenPacket("udp", fmt.Sprintf(":%d", port)) })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte(greeting), buf[:n]...), from)
		}
	}()
}

// readTCP dials addr (from the host, or from the netns at nsPath when it
// is not empty) and returns what the server wrote.
func readTCP(t *testing.T, nsPath, addr string) string {
	t.Helper()
	var out []byte
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 256)
		n, err := c.Read(buf)
		out = buf[:n]
		return err
	}
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = inNetNS(nsPath, dial)
	}
	must.NoError(t, err, must.Sprintf("tcp %s", addr))
	return string(out)
}

// exchangeUDP sends msg to addr from the host and returns the answer.
func exchangeUDP(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	must.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Write([]byte(msg))
	must.NoError(t, err)
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	must.NoError(t, err, must.Sprintf("udp %s", addr))
	return string(buf[:n])
}

// freePort returns a port free on the host for proto ("tcp" or "udp").
func freePort(t *testing.T, proto string) int {
	t.Helper()
	if proto == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		must.NoError(t, err)
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// run runs a command and returns its combined output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	bin, err := testbed.LookBin(name)
	must.NoError(t, err)
	out, err := exec.Command(bin, args...).CombinedOutput()
	must.NoError(t, err, must.Sprintf("%s %v: %s", name, args, out))
	return string(out)
}

// iptablesSave is the host's IPv4 rule set.
func iptablesSave(t *testing.T) string { return run(t, "iptables-save") }

// ipamFile is host-local's reservation file for ip on network.
func ipamFile(network, ip string) string {
	return filepath.Join("/var/lib/cni/networks", network, ip)
}
