//go:build integration

package driver

import (
	"encoding/json"
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

// faultNet is a conflist in the test's conf dir: the built-in network's
// plugins followed by ndc-cni-fault, which fails ADD while failAdd exists
// and DEL while failDel exists, and makes ADD take the duration in
// delayAdd while that exists.
type faultNet struct {
	*netBed
	name                       string
	failAdd, failDel, delayAdd string
	scope                      testbed.NetScope
}

func newFaultNet(t *testing.T) *faultNet {
	t.Helper()
	nb := newNetBed(t)
	flags := t.TempDir()
	nb.binDirs = nb.cni.BinDir + ":" + testbed.FaultCNIPlugin(t)
	fn := &faultNet{netBed: nb, name: "fault-" + nb.cni.Bridge,
		failAdd: filepath.Join(flags, "fail-add"), failDel: filepath.Join(flags, "fail-del"),
		delayAdd: filepath.Join(flags, "delay-add")}
	fn.scope = testbed.NetScope{Networks: []string{fn.name}, Bridges: []string{nb.cni.Bridge},
		Subnets: []string{nb.cni.Subnet}, NetNSDirs: []string{nb.netnsDir}}
	testbed.NetLeakCheck(t, fn.scope)

	conf, err := network.DefaultConflist(nb.cni.Bridge, nb.cni.Subnet)
	must.NoError(t, err)
	var list map[string]any
	must.NoError(t, json.Unmarshal(conf, &list))
	list["name"] = fn.name
	list["plugins"] = append(list["plugins"].([]any),
		map[string]any{"type": "ndc-cni-fault", "failAdd": fn.failAdd, "failDel": fn.failDel, "addDelay": fn.delayAdd})
	conf, err = json.Marshal(list)
	must.NoError(t, err)
	must.NoError(t, os.WriteFile(filepath.Join(nb.cni.ConfDir, "30-fault.conflist"), conf, 0o644))
	return fn
}

// harness is a plugin whose cni bin_dir holds the fault plugin too.
func (fn *faultNet) harness(t *testing.T, extra string) *testbed.Harness {
	return fn.bed.harness(t, fn.pluginHCL(extra))
}

// task is an echo server on the fault network with two port maps.
func (fn *faultNet) task(t *testing.T) *drivers.TaskConfig {
	return echoTask(t, rawTaskConfig{NetworkMode: "cni/" + fn.name, Ports: []string{"http", "dns"}},
		structs.AllocatedPortMapping{Label: "http", Value: freePort(t), To: 8080},
		structs.AllocatedPortMapping{Label: "dns", Value: freePort(t), To: 9000})
}

func (fn *faultNet) set(t *testing.T, flag string, on bool) {
	t.Helper()
	if on {
		must.NoError(t, os.WriteFile(flag, nil, 0o644))
		return
	}
	must.NoError(t, os.Remove(flag))
}

// slowAdd makes every ADD take d longer until the test ends.
func (fn *faultNet) slowAdd(t *testing.T, d time.Duration) {
	t.Helper()
	must.NoError(t, os.WriteFile(fn.delayAdd, []byte(d.String()), 0o644))
	t.Cleanup(func() { must.NoError(t, os.Remove(fn.delayAdd)) })
}

// nothingLeft checks that no container, snapshot, netns or CNI state of
// task is left.
func (fn *faultNet) nothingLeft(t *testing.T, task *drivers.TaskConfig) {
	t.Helper()
	id := containerID(task.Name, task.AllocID)
	must.False(t, fn.containerExists(t, id))
	must.False(t, fn.snapshotExists(t, id))
	must.SliceEmpty(t, testbed.NetLeaks(fn.scope))
	entries, err := os.ReadDir(fn.netnsDir)
	must.NoError(t, err)
	must.SliceEmpty(t, entries)
}

// failDestroy starts a task and destroys it while DEL fails: the error
// names the plugin's, and the container record and netns stay as the
// record of what is left, while the task's process is gone.
func (fn *faultNet) failDestroy(t *testing.T, h *testbed.Harness) *drivers.TaskConfig {
	t.Helper()
	task := fn.task(t)
	startNet(t, h, task)
	fn.set(t, fn.failDel, true)
	err := h.DestroyTask(task.ID, true)
	must.ErrorContains(t, err, "ndc-cni-fault: DEL refused")
	must.True(t, fn.containerExists(t, containerID(task.Name, task.AllocID)))
	st, err := h.InspectTask(task.ID)
	must.NoError(t, err, must.Sprint("the task is kept until it is destroyed"))
	must.Eq(t, drivers.TaskStateExited, st.State)
	_, err = os.Stat(filepath.Join(fn.netnsDir, network.NetNSName(containerID(task.Name, task.AllocID))))
	must.NoError(t, err, must.Sprint("the netns is kept for the next DEL"))
	return task
}

// TestCNIFaults runs tasks on a network whose last plugin fails ADD or DEL
// on demand.
func TestCNIFaults(t *testing.T) {
	testbed.Require(t, true, "iptables", "ip")
	fn := newFaultNet(t)

	t.Run("ADD fails", func(t *testing.T) {
		h := fn.harness(t, "")
		fn.set(t, fn.failAdd, true)
		defer fn.set(t, fn.failAdd, false)
		task := fn.task(t)
		t.Cleanup(h.MkAllocDir(task, true))
		_, _, err := h.StartTask(task)
		must.ErrorContains(t, err, "ndc-cni-fault: ADD refused")
		must.StrContains(t, err.Error(), "cni/"+fn.name)
		fn.nothingLeft(t, task)
	})
	t.Run("ADD fails after the container was made", func(t *testing.T) {
		h := fn.harness(t, "")
		fn.slowAdd(t, 3*time.Second)
		fn.set(t, fn.failAdd, true)
		defer fn.set(t, fn.failAdd, false)
		task := fn.task(t)
		// host_dns as a job has it: the resolv.conf needs no CNI result,
		// so the container is made while the ADD runs
		must.NoError(t, task.EncodeConcreteDriverConfig(&rawTaskConfig{Image: echoImage, Command: "/bin/ndc-echo",
			Args: []string{"-tcp", ":8080"}, NetworkMode: "cni/" + fn.name, Ports: []string{"http", "dns"}, HostDNS: true}))
		t.Cleanup(h.MkAllocDir(task, true))
		id := containerID(task.Name, task.AllocID)
		seen, err := fn.madeDuringStart(t, id, func() error {
			_, _, err := h.StartTask(task)
			return err
		})
		must.ErrorContains(t, err, "ndc-cni-fault: ADD refused")
		must.StrContains(t, err.Error(), "cni/"+fn.name)
		must.Positive(t, seen, must.Sprint("the task was made while the ADD ran"))
		fn.nothingLeft(t, task)
	})
	t.Run("create fails while the ADD runs", func(t *testing.T) {
		h := fn.harness(t, "")
		fn.slowAdd(t, time.Second)
		raw := rawTaskConfig{NetworkMode: "cni/" + fn.name, Command: "/no/such/program", HostDNS: true}
		task := newTask(t, raw)
		t.Cleanup(h.MkAllocDir(task, true))
		began := time.Now()
		_, _, err := h.StartTask(task)
		must.ErrorContains(t, err, "/no/such/program")
		must.GreaterEq(t, time.Second, time.Since(began), must.Sprint("the failed start waits for the ADD to undo it"))
		fn.nothingLeft(t, task)
	})
	t.Run("DEL fails, a later destroy finishes", func(t *testing.T) {
		h := fn.harness(t, "")
		task := fn.failDestroy(t, h)
		fn.set(t, fn.failDel, false)
		must.NoError(t, h.DestroyTask(task.ID, true))
		fn.nothingLeft(t, task)
		must.ErrorIs(t, h.Impl().DestroyTask(task.ID, true), drivers.ErrTaskNotFound)
	})
	t.Run("DEL fails, the driver retries", func(t *testing.T) {
		h := fn.harness(t, "")
		task := fn.failDestroy(t, h)
		fn.set(t, fn.failDel, false)
		waitFor(t, 30*time.Second, "the retry", func() bool {
			_, err := h.InspectTask(task.ID)
			return err != nil && strings.Contains(err.Error(), drivers.ErrTaskNotFound.Error())
		})
		fn.nothingLeft(t, task)
	})
	t.Run("DEL fails, the next plugin reconciles", func(t *testing.T) {
		h := fn.harness(t, "")
		task := fn.failDestroy(t, h)
		abandon(h)
		fn.set(t, fn.failDel, false)
		fn.harness(t, "gc {\n container_grace = \"1s\"\n}")
		id := containerID(task.Name, task.AllocID)
		waitFor(t, 30*time.Second, "the dangling container removed", func() bool { return !fn.containerExists(t, id) })
		fn.nothingLeft(t, task)
	})
}
