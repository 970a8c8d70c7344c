//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// get fetches url, retrying while the task starts to listen.
func get(t *testing.T, url string) string {
	t.Helper()
	var body string
	until(t, "an answer from "+url, func() bool {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == http.StatusOK
	})
	return body
}

// service waits for the single registration of a Nomad service.
func (e *env) service(t *testing.T, name string) *api.ServiceRegistration {
	t.Helper()
	var regs []*api.ServiceRegistration
	until(t, "service "+name, func() bool {
		var err error
		regs, _, err = e.nomad.API().Services().Get(name, nil)
		return err == nil && len(regs) == 1
	})
	return regs[0]
}

// hostPort is the host side of an allocated port of the allocation.
func hostPort(t *testing.T, a *api.Allocation, label string) api.PortMapping {
	t.Helper()
	for _, p := range a.AllocatedResources.Shared.Ports {
		if p.Label == label {
			return p
		}
	}
	t.Fatalf("allocation %s has no port %q", a.ID, label)
	return api.PortMapping{}
}

func testBridgePorts(t *testing.T, e *env) {
	static, err := testbed.FreePort()
	must.NoError(t, err)
	e.run(t, "bridge-ports.nomad.hcl", fmt.Sprintf("static_port=%d", static))
	a := e.alloc(t, "bridge-ports", "running")

	// the driver's address and the container port, in Nomad's catalog
	reg := e.service(t, "web-driver")
	ip, err := netip.ParseAddr(reg.Address)
	must.NoError(t, err)
	must.True(t, netip.MustParsePrefix(e.cni.Subnet).Contains(ip), must.Sprintf("advertised %s, not in %s", ip, e.cni.Subnet))
	must.Eq(t, 8080, reg.Port)
	body := get(t, fmt.Sprintf("http://%s/", net.JoinHostPort(reg.Address, fmt.Sprint(reg.Port))))
	must.StrContains(t, body, "hello from web at "+reg.Address+"/")

	auto := e.service(t, "web-auto")
	must.Eq(t, reg.Address, auto.Address)
	must.Eq(t, 8080, auto.Port)

	// the host side: the dynamic and the static port answer on the host
	http := hostPort(t, a, "http")
	hostReg := e.service(t, "web-host")
	must.Eq(t, http.Value, hostReg.Port)
	must.StrContains(t, get(t, fmt.Sprintf("http://%s/", net.JoinHostPort(hostReg.Address, fmt.Sprint(hostReg.Port)))), "hello from web")
	must.Eq(t, static, hostPort(t, a, "admin").Value)
	must.StrContains(t, get(t, fmt.Sprintf("http://127.0.0.1:%d/", static)), "hello from web")

	e.stopJob(t, "bridge-ports")
	until(t, "the host port closed", func() bool {
		_, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", static), time.Second)
		return err != nil
	})
	until(t, "no leftovers", func() bool { return len(testbed.NetLeaks(e.cni.Scope(""))) == 0 })
}

func testGroupBridge(t *testing.T, e *env) {
	e.run(t, "group-bridge.nomad.hcl")
	a := e.alloc(t, "group-bridge", "running")
	reg := e.service(t, "group-web")
	must.StrContains(t, get(t, fmt.Sprintf("http://%s/", net.JoinHostPort(reg.Address, fmt.Sprint(reg.Port)))), "hello from the group namespace")
	// the task is in Nomad's namespace: its eth0 is on Nomad's bridge, not ours
	out := e.cli(t, "alloc", "exec", "-task", "web", a.ID, "ip", "-o", "-4", "addr", "show", "eth0")
	must.StrContains(t, out, "10.213.")
	must.StrNotContains(t, out, strings.TrimSuffix(e.cni.Subnet, "0/24"))
	e.stopJob(t, "group-bridge")
	until(t, "Nomad tore its network down", func() bool {
		for _, l := range testbed.NetLeaks(e.groupNet) {
			if !strings.Contains(l, "NOMAD-ADMIN") { // Nomad keeps one rule per bridge
				return false
			}
		}
		return true
	})
}

// testGroupBridgeUserNS runs a group whose network namespace the driver
// makes: its task in a user namespace of its own serves on port 80 through
// the group's mapped port, both tasks share the namespace and the hostname,
// an agent restart finds the same namespace, and stopping the job leaves no
// namespace, veth or CNI record.
func testGroupBridgeUserNS(t *testing.T, e *env) {
	e.run(t, "group-bridge-userns.nomad.hcl")
	a := e.alloc(t, "group-bridge-userns", "running")
	reg := e.service(t, "group-userns-web")
	must.Eq(t, hostPort(t, a, "http").Value, reg.Port)
	must.Eq(t, "hello from web-1 as uid 0\n", get(t, fmt.Sprintf("http://%s/", net.JoinHostPort(reg.Address, fmt.Sprint(reg.Port)))))

	// the namespace is the driver's, at Nomad's name for it, and both tasks are in it
	nsPath := filepath.Join("/var/run/netns", a.ID)
	ns, err := os.Stat(nsPath)
	must.NoError(t, err)
	for _, task := range []string{"web", "peer"} {
		pid := e.taskPID(t, task, a.ID)
		st, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
		must.NoError(t, err)
		must.True(t, os.SameFile(ns, st), must.Sprintf("task %s is not in %s", task, nsPath))
		uid, err := hostUID(pid)
		must.NoError(t, err)
		must.NotEq(t, 0, uid, must.Sprintf("task %s runs as the host's root", task))
		must.Eq(t, "web-1", strings.TrimSpace(e.cli(t, "alloc", "exec", "-task", task, a.ID, "hostname")))
		// the hostname maps to the group's address on Nomad's bridge
		addr := strings.Fields(e.cli(t, "alloc", "exec", "-task", task, a.ID, "ip", "-o", "-4", "addr", "show", "eth0"))
		must.True(t, len(addr) > 3, must.Sprintf("eth0 of task %s: %v", task, addr))
		ip, _, _ := strings.Cut(addr[3], "/")
		must.StrContains(t, ip, "10.213.")
		must.StrContains(t, e.cli(t, "alloc", "exec", "-task", task, a.ID, "cat", "/etc/hosts"), ip+"\tweb-1\n")
	}
	must.StrContains(t, e.cli(t, "alloc", "exec", "-task", "peer", a.ID, "wget", "-qO-", "http://127.0.0.1:80/"), "hello from web-1")

	// the agent is killed and started again: its client asks for the
	// namespace again and gets the one the tasks are in
	pid := e.taskPID(t, "web", a.ID)
	e.nomad.Kill()
	must.NoError(t, e.nomad.Restart())
	until(t, "the allocation running again after the agent restart", func() bool {
		info, _, err := e.nomad.API().Allocations().Info(a.ID, nil)
		return err == nil && info.ClientStatus == "running" && info.TaskStates["web"] != nil && info.TaskStates["web"].Restarts == 0
	})
	again, err := os.Stat(nsPath)
	must.NoError(t, err)
	must.True(t, os.SameFile(ns, again), must.Sprint("the group namespace was made anew"))
	must.Eq(t, pid, e.taskPID(t, "web", a.ID))
	must.Eq(t, "hello from web-1 as uid 0\n", get(t, fmt.Sprintf("http://%s/", net.JoinHostPort(reg.Address, fmt.Sprint(reg.Port)))))

	e.stopJob(t, "group-bridge-userns")
	until(t, "the group namespace removed", func() bool {
		_, err := os.Stat(nsPath)
		return os.IsNotExist(err)
	})
	until(t, "Nomad tore its network down", func() bool {
		for _, l := range testbed.NetLeaks(e.groupNet) {
			if !strings.Contains(l, "NOMAD-ADMIN") { // Nomad keeps one rule per bridge
				return false
			}
		}
		return true
	})
}

func testHostNetwork(t *testing.T, e *env) {
	e.run(t, "host-network.nomad.hcl")
	a := e.alloc(t, "host-network", "running")
	reg := e.service(t, "host-web")
	must.Eq(t, hostPort(t, a, "http").Value, reg.Port)
	must.StrContains(t, get(t, fmt.Sprintf("http://127.0.0.1:%d/", reg.Port)), "hello from the host network")
	e.stopJob(t, "host-network")
}

// testDefaultNetwork runs a job that names no network: the task is on the
// driver's bridge, not the host's network, and answers on its mapped port.
func testDefaultNetwork(t *testing.T, e *env) {
	e.run(t, "default-network.nomad.hcl")
	a := e.alloc(t, "default-network", "running")
	port := hostPort(t, a, "http")
	body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port.Value))
	must.StrHasPrefix(t, "hello from ", body)
	addr, err := netip.ParsePrefix(strings.TrimSpace(strings.TrimPrefix(body, "hello from ")))
	must.NoError(t, err)
	must.True(t, netip.MustParsePrefix(e.cni.Subnet).Contains(addr.Addr()), must.Sprintf("task address %s is not on the bridge %s", addr, e.cni.Subnet))
	// its own namespace: the host's loopback-only agent address is not there
	out := e.cli(t, "alloc", "exec", "-task", "web", a.ID, "ip", "-o", "addr")
	must.StrContains(t, out, addr.String())
	must.StrNotContains(t, out, e.cni.Bridge)
	e.stopJob(t, "default-network")
	until(t, "no leftovers", func() bool { return len(testbed.NetLeaks(e.cni.Scope(""))) == 0 })
}
