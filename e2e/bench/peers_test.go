//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// The peers run under one Nomad agent: this plugin (its tasks in a
// containerd namespace of their own on the bench's containerd), Nomad's
// raw_exec (Nomad's own work per task: the floor) and Nomad's docker driver
// on a dockerd of the bench's own.
const (
	peersNamespace = "nomad-peers"
	dockerImage    = "busybox:bench"
)

// peers is the agent, the dockerd and the plugin's network of the peer
// figures.
type peers struct {
	b      *bed
	nomad  *testbed.Nomad
	api    *api.Client // one client: the agent limits connections per address
	docker *testbed.Dockerd
	cni    *testbed.CNINet
	netns  string
	crun   string // the crun shim's path (writeCrunShim)
	seq    int    // job IDs
	// phases are the start figure's task event times by peer and phase
	// (notePhases)
	phases map[string]map[string][]float64
}

// peersMissing says what the peer figures need and this machine lacks.
func peersMissing() []string {
	missing := testbed.DockerMissing()
	if _, err := testbed.LookBin("nomad"); err != nil {
		missing = append(missing, "nomad (make deps)")
	}
	if _, err := os.Stat(filepath.Join(testbed.RepoRoot(), "bin", testbed.PluginBinary)); err != nil {
		missing = append(missing, "bin/"+testbed.PluginBinary+" (make build)")
	}
	if _, err := os.Stat(crunBin); err != nil {
		missing = append(missing, crunBin+" (Debian's crun: `bash hack/deps.sh bench`)")
	}
	return missing
}

func (b *bed) newPeers() *peers {
	t := b.t
	p := &peers{b: b, cni: testbed.NewCNINet(t), netns: t.TempDir()}
	p.crun = p.writeCrunShim()
	testbed.NetLeakCheck(t, p.cni.Scope("", p.netns))
	p.docker = testbed.StartDockerd(t)
	img, err := testbed.BuildBusybox()
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must.NoError(t, p.docker.Load(ctx, img, dockerImage))
	_, err = testbed.ImportImage(namespaces.WithNamespace(ctx, peersNamespace), b.cd.Client, img, busyboxRef, "")
	must.NoError(t, err)
	p.nomad = testbed.StartNomad(t, testbed.NomadConfig{
		PluginConfig:   p.pluginConfig("nomad"),
		Extra:          p.extra(),
		DriverDenylist: "java,qemu",
		CgroupParent:   fmt.Sprintf("/ndc-peers-%d", os.Getpid()),
	})
	p.api = p.nomad.API()
	p.awaitDrivers()
	return p
}

// pluginConfig is this plugin's config with the given log collector.
func (p *peers) pluginConfig(collector string) string {
	return fmt.Sprintf("address = %q\nnamespace = %q\nallow_runtimes = [\"io.containerd.runc.v2\", %q]\n"+
		"gc {\n  image = false\n}\nlogging {\n  collector = %q\n}\n",
		p.b.cd.Address, peersNamespace, p.crun, collector) + p.cni.PluginBlock(p.netns)
}

// extra configures the agent's raw_exec and docker drivers.
func (p *peers) extra() string {
	return fmt.Sprintf(`plugin "raw_exec" {
  config {
    enabled = true
  }
}

plugin "docker" {
  config {
    endpoint = %q
    gc {
      image = false
    }
  }
}
`, p.docker.Endpoint)
}

// awaitDrivers waits until the agent's node has all three drivers healthy.
func (p *peers) awaitDrivers() {
	cl := p.api
	var last string
	ok := testbed.Poll(time.Minute, 250*time.Millisecond, func() bool {
		nodes, _, err := cl.Nodes().List(nil)
		if err != nil || len(nodes) == 0 {
			last = fmt.Sprint("no node: ", err)
			return false
		}
		node, _, err := cl.Nodes().Info(nodes[0].ID, nil)
		if err != nil {
			last = err.Error()
			return false
		}
		for _, name := range []string{"containerd", "raw_exec", "docker"} {
			if d := node.Drivers[name]; d == nil || !d.Detected || !d.Healthy {
				last = fmt.Sprintf("%s: %+v", name, d)
				return false
			}
		}
		return true
	})
	if !ok {
		p.b.t.Fatalf("drivers not healthy: %s\n%s", last, p.nomad.LogTail(4096))
	}
}

// setCollector restarts the agent with this plugin's log collector set,
// and waits until the new plugin runs.
func (p *peers) setCollector(collector string) {
	must.NoError(p.b.t, p.nomad.Reconfigure(p.pluginConfig(collector), p.extra()))
	p.awaitDrivers()
	testbed.Eventually(p.b.t, time.Minute, "the plugin process", func() bool {
		for _, pr := range p.processes() {
			if pr.kind == "plugin" {
				return true
			}
		}
		return false
	})
}

// stop removes the agent and dockerd now (the test's cleanup would, later).
func (p *peers) stop() {
	must.NoError(p.b.t, p.nomad.Stop())
	must.NoError(p.b.t, p.docker.Stop())
}

// peer is one contender of the peer figures: a driver and its task config.
type peer struct {
	name   string
	driver string
	config map[string]any
}

// startScript is every peer task's command: its first instruction creates
// a file in the task dir, whose modification time says when it ran (busybox's
// date has no nanoseconds), then it idles.
const startScript = `: > "$NOMAD_TASK_DIR/started"; exec sleep 3600`

func rawExecPeer() peer {
	return peer{name: "raw_exec", driver: "raw_exec",
		config: map[string]any{"command": "/bin/sh", "args": []string{"-c", startScript}}}
}

// containerdPeer is this plugin's task on network ("host" or "bridge").
func containerdPeer(network string) peer {
	return peer{name: "containerd, " + network, driver: "containerd", config: map[string]any{
		"image": busyboxRef, "command": "sh", "args": []string{"-c", startScript}, "network_mode": network}}
}

// dockerPeer is the docker driver's task on network ("host", or "bridge":
// docker's default network on the bench's bridge).
func dockerPeer(network string) peer {
	c := map[string]any{"image": dockerImage, "command": "sh", "args": []string{"-c", startScript}}
	if network == "host" {
		c["network_mode"] = "host"
	}
	return peer{name: "docker, " + network, driver: "docker", config: c}
}

// job is a batch job of count allocations with one task of pr each.
func (p *peers) job(pr peer, count int) *api.Job {
	p.seq++
	id := fmt.Sprintf("peer-%s-%d", strings.Join(strings.FieldsFunc(pr.name, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}), "-"), p.seq)
	job := api.NewBatchJob(id, id, "global", 50)
	job.Datacenters = []string{"dc1"}
	tg := api.NewTaskGroup("g", count)
	tg.RestartPolicy = &api.RestartPolicy{Attempts: ptr(0), Mode: ptr("fail")}
	tg.ReschedulePolicy = &api.ReschedulePolicy{Attempts: ptr(0), Unlimited: ptr(false)}
	tg.EphemeralDisk = &api.EphemeralDisk{SizeMB: ptr(10)}
	task := api.NewTask("t", pr.driver)
	task.Config = pr.config
	task.Resources = &api.Resources{CPU: ptr(20), MemoryMB: ptr(32)}
	task.KillSignal = "SIGKILL"
	task.KillTimeout = ptr(time.Second)
	task.LogConfig = &api.LogConfig{MaxFiles: ptr(1), MaxFileSizeMB: ptr(1)}
	tg.AddTask(task)
	job.AddTaskGroup(tg)
	return job
}

// run registers job and waits until each of its allocations' tasks has
// run its first instruction; it returns the allocations (their IDs).
func (p *peers) run(job *api.Job) []*api.Allocation {
	allocs, err := p.tryRun(job)
	must.NoError(p.b.t, err)
	return allocs
}

// tryRun is run that returns an allocation's failure (with its task
// events) as an error, with the job purged.
func (p *peers) tryRun(job *api.Job) ([]*api.Allocation, error) {
	t, cl := p.b.t, p.api
	_, _, err := cl.Jobs().Register(job, nil)
	must.NoError(t, err)
	want := *job.TaskGroups[0].Count
	var allocs []*api.Allocation
	var failed error
	ok := testbed.Poll(2*time.Minute, 50*time.Millisecond, func() bool {
		stubs, _, err := cl.Jobs().Allocations(*job.ID, true, nil)
		if err != nil || len(stubs) < want {
			return false
		}
		allocs = allocs[:0]
		for _, s := range stubs {
			allocs = append(allocs, &api.Allocation{ID: s.ID})
		}
		for _, s := range stubs {
			if s.ClientStatus == api.AllocClientStatusFailed || s.ClientStatus == api.AllocClientStatusLost {
				failed = fmt.Errorf("job %s: allocation %s %s: %s", *job.ID, s.ID, s.ClientStatus, taskEvents(s.TaskStates))
				return true
			}
			if _, err := os.Stat(p.startedFile(s.ID)); err != nil {
				return false
			}
		}
		return true
	})
	if !ok {
		failed = fmt.Errorf("job %s: tasks not started within 2m", *job.ID)
	}
	if failed != nil {
		p.purge(job, allocs)
		return nil, failed
	}
	return allocs, nil
}

// taskEvents lists the events of an allocation's tasks.
func taskEvents(states map[string]*api.TaskState) string {
	var events []string
	for _, st := range states {
		for _, ev := range st.Events {
			events = append(events, ev.Type+": "+ev.DisplayMessage)
		}
	}
	return strings.Join(events, "; ")
}

// startedFile is the file the task of allocation id creates first.
func (p *peers) startedFile(allocID string) string {
	return filepath.Join(p.nomad.Config.DataDir, "alloc", allocID, "t", "local", "started")
}

// purge stops and purges job and waits until its allocations have ended
// and their processes are gone.
func (p *peers) purge(job *api.Job, allocs []*api.Allocation) {
	t, cl := p.b.t, p.api
	_, _, err := cl.Jobs().Deregister(*job.ID, true, nil)
	must.NoError(t, err)
	testbed.Eventually(t, time.Minute, "allocations of job "+*job.ID+" stopped", func() bool {
		for _, a := range allocs {
			info, _, err := cl.Allocations().Info(a.ID, nil)
			if err == nil && !info.ClientTerminalStatus() {
				return false
			}
			if err == nil {
				if st := info.TaskStates["t"]; st != nil && st.State != "dead" {
					return false
				}
			}
		}
		return true
	})
}

// figures measures the starts and memory of all peers with this plugin on
// Nomad's logmon, then restarts the agent with the plugin's own collector
// and measures this driver's again (its starts again against all peers).
func (p *peers) figures(runs, rounds int) (rows []Row, findings []string) {
	crun := p.crunWorks()
	if crun != "" {
		findings = append(findings, "crun: not measured, a start with crun fails: "+crun)
	}
	starts, phases := p.figureStarts(runs, "nomad", crun == "")
	rows = append(rows, starts...)
	findings = append(findings, phases)
	notes := map[string]string{}
	var raw, dock, logmon Summary
	raw, notes["raw"] = p.memorySample(rawExecPeer(), rounds)
	dock, notes["docker"] = p.memorySample(dockerPeer("host"), rounds)
	logmon, notes["logmon"] = p.memorySample(containerdPeer("host"), rounds)

	p.setCollector("driver")
	p.startLatency(containerdPeer("host")) // the new plugin's first task: what it sets up once
	starts, phases = p.figureStarts(runs, "driver", false)
	rows = append(rows, starts...)
	findings = append(findings, phases)
	own, ownNote := p.memorySample(containerdPeer("host"), rounds)
	notes["own"] = ownNote
	return append(rows, memoryRows(logmon, own, raw, dock, notes)...), findings
}
