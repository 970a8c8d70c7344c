//go:build integration

package driver

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// taskMade reports whether containerd has the task (the created process)
// of container id.
func (b *bed) taskMade(t *testing.T, id string) bool {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), b.cd.Namespace)
	c, err := b.cd.Client.LoadContainer(ctx, id)
	if err != nil {
		return false
	}
	_, err = c.Task(ctx, nil)
	return err == nil
}

// madeDuringStart runs start, a StartTask of container id, and returns how
// long after start began containerd first had the container's task, or 0
// when start returned before it was seen; and start's error.
func (fn *faultNet) madeDuringStart(t *testing.T, id string, start func() error) (time.Duration, error) {
	t.Helper()
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- start() }()
	var seen time.Duration
	var err error
	returned := false
	testbed.Poll(2*time.Minute, 10*time.Millisecond, func() bool {
		select {
		case err = <-done:
			returned = true
			return true
		default:
		}
		if fn.taskMade(t, id) {
			seen = time.Since(began)
			return true
		}
		return false
	})
	if !returned {
		err = <-done
	}
	return seen, err
}

// startPhases is the "task start phases" debug line the driver logged for
// container id, from its JSON log.
func startPhases(t *testing.T, log, id string) map[string]any {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["@message"] == "task start phases" && line["container_id"] == id {
			return line
		}
	}
	t.Fatalf("no start phases line for %s in the driver's log", id)
	return nil
}

// TestStartOverlapsCNIAdd starts a task on a network whose ADD takes three
// seconds: the container and its task are made while the ADD runs, so the
// start takes less than the ADD and the creation one after the other; and
// the task's first instruction still finds its address on eth0 and its
// hostname's line in /etc/hosts.
func TestStartOverlapsCNIAdd(t *testing.T) {
	testbed.Require(t, true, "iptables", "ip")
	fn := newFaultNet(t)
	var log testbed.SyncBuffer
	logger := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testbed.TestLog(t)})
	logger.RegisterSink(hclog.NewSinkAdapter(&hclog.LoggerOptions{Level: hclog.Debug, Output: &log, JSONFormat: true}))
	d := New(logger)
	h := testbed.NewHarness(t, d)
	fn.setConfig(t, h, fn.pluginHCL(""))
	t.Cleanup(d.Shutdown)

	const delay = 3 * time.Second
	fn.slowAdd(t, delay)
	raw := sh("ip -4 addr show eth0 > /local/net.txt; cat /etc/hosts >> /local/net.txt; exec sleep 3600")
	// host_dns as a job has it: the resolv.conf needs no CNI result
	raw.NetworkMode, raw.Hostname, raw.HostDNS = "cni/"+fn.name, "overlap", true
	task := newTask(t, raw)
	t.Cleanup(h.MkAllocDir(task, true))
	t.Cleanup(func() { _ = d.DestroyTask(task.ID, true) })
	id := containerID(task.Name, task.AllocID)
	var dnet *drivers.DriverNetwork
	seen, err := fn.madeDuringStart(t, id, func() error {
		var err error
		_, dnet, err = h.StartTask(task)
		return err
	})
	must.NoError(t, err)
	must.Positive(t, seen, must.Sprint("the task was made before StartTask returned"))
	must.Less(t, delay, seen, must.Sprint("the task was made while the ADD ran"))

	phases := startPhases(t, log.String(), id)
	add, made := phases["cni_add_ms"].(float64), phases["container_ms"].(float64)+phases["task_ms"].(float64)
	must.GreaterEq(t, float64(delay.Milliseconds()), add)
	must.Less(t, add+made, phases["total_ms"].(float64), must.Sprintf("phases %v", phases))

	must.NotNil(t, dnet)
	out := filepath.Join(task.TaskDir().LocalDir, "net.txt")
	var got string
	waitFor(t, 30*time.Second, "the task's network report", func() bool {
		data, err := os.ReadFile(out)
		got = string(data)
		return err == nil && strings.Contains(got, "ip6-allrouters")
	})
	must.StrContains(t, got, "inet "+dnet.IP+"/")
	must.StrContains(t, got, dnet.IP+"\toverlap\n")
}
