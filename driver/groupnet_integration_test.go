//go:build integration

package driver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/drivers/proto"
	"github.com/shoenig/test/must"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// TestGroupNetwork plays Nomad's network hook: the driver makes the group's
// network namespace, two tasks in user namespaces of their own join it, one
// serves on port 80 and the other reaches it over loopback, both carry the
// group's hostname; a second request, also from a restarted plugin, finds
// the same namespace, and destroying it leaves nothing.
func TestGroupNetwork(t *testing.T) {
	nb := newNetBed(t)
	h := nb.harness(t, nb.pluginHCL(""))
	caps, err := h.Capabilities()
	must.NoError(t, err)
	must.True(t, caps.MustInitiateNetwork)
	caps, err = nb.harness(t, nb.pluginHCL("create_group_network = false\n")).Capabilities()
	must.NoError(t, err)
	must.False(t, caps.MustInitiateNetwork, must.Sprint("create_group_network = false"))
	nm := h.DriverPlugin.(drivers.DriverNetworkManager)

	alloc := uuid.Generate()
	spec, created, err := createNetwork(t, h, alloc, "web-1")
	must.NoError(t, err)
	t.Cleanup(func() { _ = h.Impl().(drivers.DriverNetworkManager).DestroyNetwork(alloc, spec) })
	must.True(t, created)
	path := filepath.Join(nb.netnsDir, alloc)
	must.Eq(t, drivers.NetIsolationModeGroup, spec.Mode)
	must.Eq(t, path, spec.Path)
	must.Eq(t, &drivers.HostsConfig{Hostname: "web-1"}, spec.HostsConfig)
	ino := inode(t, path)

	// Nomad asks again after its client restarts, and so may a restarted plugin
	again, created, err := nm.CreateNetwork(alloc, &drivers.NetworkCreateRequest{})
	must.NoError(t, err)
	must.False(t, created)
	must.Eq(t, path, again.Path)
	restarted := nb.harness(t, nb.pluginHCL("")).DriverPlugin.(drivers.DriverNetworkManager)
	again, created, err = restarted.CreateNetwork(alloc, &drivers.NetworkCreateRequest{})
	must.NoError(t, err)
	must.False(t, created)
	must.Eq(t, path, again.Path)
	must.Eq(t, ino, inode(t, path))

	// what Nomad's bridge gives the namespace: an eth0 with an address,
	// which the hostname maps to
	nsenter, err := testbed.LookBin("nsenter")
	must.NoError(t, err)
	for _, args := range [][]string{
		{"ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"},
		{"ip", "addr", "add", "10.99.0.5/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
	} {
		out, err := exec.Command(nsenter, append([]string{"--net=" + path}, args...)...).CombinedOutput()
		must.NoError(t, err, must.Sprintf("%v: %s", args, out))
	}

	web := groupTask(t, alloc, spec, "web", `mkdir /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www`)
	start(t, h, web)
	peer := groupTask(t, alloc, spec, "peer", "exec sleep 600")
	start(t, h, peer)
	for _, task := range []*drivers.TaskConfig{web, peer} {
		res := h.Exec(t, task.ID, `hostname; grep web-1 /etc/hosts; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; readlink /proc/self/ns/net`, false, "")
		must.Eq(t, 0, res.Code, must.Sprint(res.Stderr))
		must.Eq(t, fmt.Sprintf("web-1\n10.99.0.5\tweb-1\n0\nnet:[%d]\n", ino), res.Stdout, must.Sprintf("task %s", task.Name))
	}
	// root of a user namespace of its own: on the host not root
	must.StrContains(t, h.Exec(t, web.ID, "cat /proc/self/uid_map", false, "").Stdout, fmt.Sprint(defaultIDRangeStart))
	var body string
	waitFor(t, 10*time.Second, "the peer reaching the web task on port 80", func() bool {
		body = h.Exec(t, peer.ID, "wget -qO- http://127.0.0.1:80/", false, "").Stdout
		return body != ""
	})
	must.Eq(t, "web-1\n", body)

	for _, task := range []*drivers.TaskConfig{web, peer} {
		must.NoError(t, h.StopTask(task.ID, time.Second, "SIGKILL"))
		must.NoError(t, h.DestroyTask(task.ID, true))
	}
	must.NoError(t, nm.DestroyNetwork(alloc, spec))
	_, err = os.Stat(path)
	must.True(t, os.IsNotExist(err), must.Sprintf("netns %s is still there: %v", path, err))
	must.NoError(t, nm.DestroyNetwork(alloc, spec))
}

// Bad requests are refused with the field and value, and make nothing.
func TestGroupNetworkRefused(t *testing.T) {
	nb := newNetBed(t)
	h := nb.harness(t, nb.pluginHCL(""))
	nm := h.DriverPlugin.(drivers.DriverNetworkManager)
	alloc := uuid.Generate()

	_, _, err := nm.CreateNetwork("../"+alloc, &drivers.NetworkCreateRequest{})
	must.ErrorContains(t, err, `alloc id "../`+alloc+`": want letters, digits`)
	_, _, err = createNetwork(t, h, alloc, "web_1")
	must.ErrorContains(t, err, `network hostname: "web_1" may only hold letters, digits, '-' and '.'`)
	// a spec for a namespace the driver did not make is not removed
	other := filepath.Join(t.TempDir(), alloc)
	err = nm.DestroyNetwork(alloc, &drivers.NetworkIsolationSpec{Mode: drivers.NetIsolationModeGroup, Path: other})
	must.ErrorContains(t, err, fmt.Sprintf("netns path %q is not the driver's %q", other, filepath.Join(nb.netnsDir, alloc)))
	entries, err := os.ReadDir(nb.netnsDir)
	must.NoError(t, err)
	must.SliceEmpty(t, entries)

	// a netns_dir that cannot be made fails the request and leaves nothing
	file := filepath.Join(t.TempDir(), "file")
	must.NoError(t, os.WriteFile(file, nil, 0o644))
	broken := nb.harness(t, strings.Replace(nb.pluginHCL(""), nb.netnsDir, filepath.Join(file, "netns"), 1))
	_, _, err = broken.DriverPlugin.(drivers.DriverNetworkManager).CreateNetwork(alloc, &drivers.NetworkCreateRequest{})
	must.ErrorContains(t, err, "failed to create the network of allocation "+alloc+": ")
	must.ErrorContains(t, err, filepath.Join(file, "netns"))
	data, err := os.ReadFile(file)
	must.NoError(t, err)
	must.SliceEmpty(t, data)
}

// createNetwork sends CreateNetwork as an agent that passes the group's
// hostname does (Nomad 1.6.1's client leaves it out of the message).
func createNetwork(t *testing.T, h *testbed.Harness, alloc, hostname string) (*drivers.NetworkIsolationSpec, bool, error) {
	t.Helper()
	conn, err := grpc.NewClient(h.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	must.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := proto.NewDriverClient(conn).CreateNetwork(ctx, &proto.CreateNetworkRequest{AllocId: alloc, Hostname: hostname})
	if err != nil {
		return nil, false, err
	}
	return drivers.NetworkIsolationSpecFromProto(resp.IsolationSpec), resp.Created, nil
}

// groupTask is task name of allocation alloc in the group namespace spec,
// in a user namespace of its own, running script.
func groupTask(t *testing.T, alloc string, spec *drivers.NetworkIsolationSpec, name, script string) *drivers.TaskConfig {
	raw := sh(script)
	raw.UserNSMode = "auto"
	task := newTask(t, raw)
	task.AllocID, task.Name, task.NetworkIsolation = alloc, name, spec
	return task
}

// inode is the inode of the file at path (a netns: its namespace's).
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	must.NoError(t, err)
	return st.Sys().(*syscall.Stat_t).Ino
}
