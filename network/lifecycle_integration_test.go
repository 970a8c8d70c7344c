//go:build integration

package network

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
	"github.com/shoenig/test/must"
)

// writeConflist puts a conflist named name into the test's conf dir.
func (e *env) writeConflist(t *testing.T, file, name, plugins string) string {
	t.Helper()
	path := filepath.Join(e.net.ConfDir, file)
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [%s]}`, name, plugins)
	must.NoError(t, os.WriteFile(path, []byte(conf), 0o644))
	return path
}

// bridgePlugin is a bridge plugin config on the test's bridge with
// host-local IPAM over subnet.
func (e *env) bridgePlugin(subnet string) string {
	return fmt.Sprintf(`{"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true,
	  "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}}`,
		e.net.Bridge, subnet)
}

func TestNamedConflist(t *testing.T) {
	e := newEnv(t)
	name := e.prefix + "-named"
	testbed.NetLeakCheck(t, e.scope(name))
	path := e.writeConflist(t, "10-named.conflist", name, e.bridgePlugin(e.net.Subnet)+`,
	  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true, "backend": "iptables"}`)
	e.writeConflist(t, "20-other.conflist", e.prefix+"-other", `{"type": "loopback"}`)

	hostPort := freePort(t, "tcp")
	res := e.setup(t, Request{ID: e.id(), Network: name, Ports: portMaps(hostPort, 8080, "tcp")})
	must.Eq(t, name, res.ConfName)
	must.True(t, netip.MustParsePrefix(e.net.Subnet).Contains(netip.MustParseAddr(res.IP)))
	_, err := os.Stat(ipamFile(name, res.IP))
	must.NoError(t, err)
	listenTCP(t, res.NetNSPath, 8080, "named")
	must.Eq(t, "named", readTCP(t, "", fmt.Sprintf("127.0.0.1:%d", hostPort)))

	// the conflist is removed before the task stops: teardown uses what CNI
	// cached at ADD (config and ports) and still releases everything
	must.NoError(t, os.Remove(path))
	noPorts := res.Attachment
	noPorts.Ports = nil
	e.teardown(t, noPorts)
	must.Eq(t, []string(nil), testbed.NetLeaks(e.scope(name)))

	_, err = e.m.Setup(context.Background(), Request{ID: e.id(), Network: name})
	must.ErrorContains(t, err, fmt.Sprintf(`failed to set up network %q: no such network`, name))
	must.ErrorContains(t, err, e.prefix+"-other")
}

func TestTeardown_ConfigGone(t *testing.T) {
	e := newEnv(t)
	name := e.prefix + "-gone"
	testbed.NetLeakCheck(t, e.scope(name))
	path := e.writeConflist(t, "gone.conflist", name, e.bridgePlugin(e.net.Subnet))
	res := e.setup(t, Request{ID: e.id(), Network: name})

	// neither the conflist nor CNI's cache of it is left: teardown cannot
	// run the network's DEL, but removes the netns and loopback's state
	must.NoError(t, os.Remove(path))
	must.NoError(t, os.Remove(filepath.Join("/var/lib/cni/results", name+"-"+res.ID+"-eth0")))
	e.teardown(t, res.Attachment)
	_, err := os.Stat(res.NetNSPath)
	must.True(t, errors.Is(err, fs.ErrNotExist))
	_, err = os.Stat(filepath.Join("/var/lib/cni/results", "cni-loopback-"+res.ID+"-lo"))
	must.True(t, errors.Is(err, fs.ErrNotExist))
	e.teardown(t, res.Attachment)
	must.SliceEmpty(t, testbed.PurgeNet(e.scope(name))) // the address and masquerade rule
}

func TestTeardown_NothingToUndo(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// never set up, on a network that does not exist
	must.NoError(t, e.m.Teardown(ctx, Attachment{ID: e.id(), Network: "ghost"}))
	// never set up, on the built-in network
	must.NoError(t, e.m.Teardown(ctx, Attachment{ID: e.id(), Network: BuiltinNetwork}))
	// the netns is already gone: CNI DEL runs without it
	res := e.setup(t, Request{ID: e.id(), Network: BuiltinNetwork})
	must.NoError(t, removeNetNS(res.NetNSPath))
	e.teardown(t, res.Attachment)
	_, err := os.Stat(ipamFile(e.net.Bridge, res.IP))
	must.True(t, errors.Is(err, fs.ErrNotExist), must.Sprint("the address was not released"))
	// without its netns the bridge plugin cannot learn the address whose
	// masquerade rule it made, so that rule is the one thing left
	leaks := testbed.NetLeaks(e.scope())
	for _, l := range leaks {
		must.RegexMatch(t, regexp.MustCompile(`^iptables -t nat (chain CNI-[0-9a-f]+$|rule: -A POSTROUTING -s `+res.IP+`/32 )`), l)
	}
	must.SliceEmpty(t, testbed.PurgeNet(e.scope()))
}

func TestSetup_OverStaleNetNS(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	first := e.setup(t, Request{ID: id, Ports: portMaps(freePort(t, "tcp"), 80, "tcp")})
	// the driver died before it recorded the attachment; the task restarts
	second := e.setup(t, Request{ID: id, Ports: portMaps(freePort(t, "tcp"), 80, "tcp")})
	must.Eq(t, first.NetNSPath, second.NetNSPath)
	_, err := os.Stat(ipamFile(e.net.Bridge, first.IP))
	if first.IP != second.IP {
		must.True(t, errors.Is(err, fs.ErrNotExist), must.Sprint("first address still reserved"))
	}
	e.teardown(t, second.Attachment)
}

func TestSetup_FailureLeavesNothing(t *testing.T) {
	// each case has a bridge of its own: the bridge plugin cannot reuse a
	// bridge whose first ADD failed before it set the bridge's address
	cases := []struct {
		name, want string
		plugins    func(e *env) string
	}{
		{"missing plugin", `failed to find plugin "ndc-no-such-plugin"`,
			func(*env) string { return `{"type": "ndc-no-such-plugin"}` }},
		{"bad subnet", "host bits set",
			func(e *env) string { return e.bridgePlugin("10.215.0.7/24") }},
		{"late failure", `failed to find plugin "ndc-no-such-plugin"`,
			func(e *env) string {
				return e.bridgePlugin(e.net.Subnet) + `,
				  {"type": "portmap", "capabilities": {"portMappings": true}, "backend": "iptables"},
				  {"type": "firewall", "backend": "iptables"},
				  {"type": "ndc-no-such-plugin"}`
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			name := e.prefix + "-fail"
			testbed.NetLeakCheck(t, e.scope(name))
			e.writeConflist(t, name+".conflist", name, tc.plugins(e))
			id := e.id()
			_, err := e.m.Setup(context.Background(), Request{ID: id, Network: name,
				Ports: portMaps(freePort(t, "tcp"), 80, "tcp")})
			must.ErrorContains(t, err, fmt.Sprintf("failed to set up network %q: ", name))
			must.ErrorContains(t, err, tc.want)
			must.Eq(t, []string(nil), testbed.NetLeaks(e.scope(name)))
			must.StrNotContains(t, iptablesSave(t), id)
		})
	}
}

func TestSetupTeardown_Loop(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	before := perContainerChains(iptablesSave(t))
	for i := 0; i < 50; i++ {
		res, err := e.m.Setup(ctx, Request{ID: e.id(), Ports: append(
			portMaps(freePort(t, "tcp"), 80, "tcp"), portMaps(freePort(t, "udp"), 53, "udp")...)})
		must.NoError(t, err, must.Sprintf("cycle %d", i))
		must.NoError(t, e.m.Teardown(ctx, res.Attachment), must.Sprintf("cycle %d", i))
	}
	must.Eq(t, []string(nil), testbed.NetLeaks(e.scope()))
	must.Eq(t, before, perContainerChains(iptablesSave(t)))
}

func TestSetupTeardown_Concurrent(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 8
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.id()
	}
	results := make([]*Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.m.Setup(ctx, Request{ID: id, Ports: portMaps(freePort(t, "tcp"), 80, "tcp")})
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r != nil {
			t.Cleanup(func() { _ = e.m.Teardown(context.Background(), r.Attachment) })
		}
	}
	seen := map[string]bool{}
	for i := range ids {
		must.NoError(t, errs[i])
		must.False(t, seen[results[i].IP], must.Sprintf("address %s given twice", results[i].IP))
		seen[results[i].IP] = true
	}
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.m.Teardown(ctx, results[i].Attachment)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		must.NoError(t, err)
	}
	must.Eq(t, []string(nil), testbed.NetLeaks(e.scope()))
}

// perContainerChains lists the chains CNI plugins make per container
// (CNI-<hash>, CNI-DN-<hash>) in an iptables-save output.
func perContainerChains(save string) []string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if m := regexp.MustCompile(`^:(CNI-(DN-)?[0-9a-f]+) `).FindStringSubmatch(l); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}
