//go:build e2e

// Package e2e runs the example jobs on a real Nomad agent with the plugin,
// a hermetic containerd and a local registry, and checks the behaviour
// through the nomad CLI and API.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/hashicorp/nomad/api"
	"github.com/opencontainers/go-digest"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// env is the agent, containerd and registry the e2e tests share.
type env struct {
	cd       *testbed.Containerd
	nomad    *testbed.Nomad
	image    string
	hostDir  string
	cni      *testbed.CNINet  // the driver's built-in bridge network
	groupNet testbed.NetScope // Nomad's bridge for group network mode
	registry string
	digest   digest.Digest     // of the busybox image, on every registry
	private  *testbed.Registry // TLS and basic auth
	mirror   *mirror           // docker.io's mirror (the plain registry)
	// jobs is the directory run takes the example jobs from ("": the
	// repository's example-jobs)
	jobs string
}

// jobFile is the path of an example job that run submits.
func (e *env) jobFile(job string) string {
	if e.jobs != "" {
		return filepath.Join(e.jobs, job)
	}
	return filepath.Join(testbed.RepoRoot(), "example-jobs", job)
}

func setup(t *testing.T) *env {
	t.Helper()
	testbed.Require(t, true, "containerd", "containerd-shim-runc-v2", "runc", "nomad", "docker-registry")
	cd := testbed.StartContainerd(t)
	reg := testbed.StartRegistry(t)
	img, err := testbed.BuildBusybox()
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dgst, err := img.Push(ctx, reg.Host, "demo/busybox:1")
	must.NoError(t, err)
	_, err = img.Push(ctx, reg.Host, "demo/unsigned:1")
	must.NoError(t, err)
	// every job runs a cosign-signed image under an enforce rule
	cosign := testbed.NewCosign(t)
	key := cosign.GenerateKeyPair(t, "demo")
	must.NoError(t, cosign.Sign(ctx, key.Private, reg.Host+"/demo/busybox@"+dgst.String(), testbed.SignOptionsFor(reg)))
	cosign.CheckOffline(t)
	// keyless: signed in a Sigstore made here by the release workflow
	_, err = img.Push(ctx, reg.Host, "keyless/busybox:1")
	must.NoError(t, err)
	sigstore := testbed.NewVirtualSigstore(t)
	must.NoError(t, testbed.AttachBundle(ctx, reg.Host, "keyless/busybox", img.Descriptor(),
		sigstore.SignImage(t, ciIssuer, ciRelease, dgst, testbed.BundleOptions{})))
	private, mirror, hostsDir := registries(t, ctx, img, reg)

	hostDir := t.TempDir()
	must.NoError(t, os.WriteFile(filepath.Join(hostDir, "input"), []byte("from-the-host\n"), 0o644))
	cni := testbed.NewCNINet(t)
	testbed.NetLeakCheck(t, cni.Scope(""))
	plugin := testbed.ContainerdPluginConfig(cd) + fmt.Sprintf("registry_config_dir = %q\n", hostsDir) +
		fmt.Sprintf("volumes {\n  enabled = true\n  allowed_host_paths = [%q]\n}\n", hostDir) +
		fmt.Sprintf("allowed_seccomp_profiles = [%q]\nno_new_privileges = true\n", seccompDir()) +
		fmt.Sprintf("cni {\n  bin_dir = %q\n  conf_dir = %q\n  bridge_name = %q\n  subnet = %q\n}\n", cni.BinDir, cni.ConfDir, cni.Bridge, cni.Subnet) +
		fmt.Sprintf("trust {\n  rule {\n    prefix = %q\n    public_keys = [%q]\n    policy = \"enforce\"\n  }\n", reg.Host+"/demo/", key.Public) +
		fmt.Sprintf("  rule {\n    prefix = %q\n    trusted_root = %q\n    identity {\n      issuer = %q\n      subject_regexp = %q\n    }\n  }\n}\n",
			reg.Host+"/keyless/", sigstore.RootPath, ciIssuer, `^https://github\.com/example/payments/\.github/workflows/release\.yml@refs/tags/v`)
	// a cgroup parent of its own: other agents on the host rewrite /nomad's
	n := testbed.StartNomad(t, testbed.NomadConfig{PluginConfig: plugin, CgroupParent: fmt.Sprintf("/ndc-e2e-%d", os.Getpid())})
	return &env{cd: cd, nomad: n, image: reg.Host + "/demo/busybox:1", registry: reg.Host, digest: dgst, private: private, mirror: mirror, hostDir: hostDir, cni: cni, groupNet: n.BridgeScope(t)}
}

// nomad runs the CLI against the agent and returns its combined output.
func (e *env) cli(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := e.nomad.Command(ctx, args...).CombinedOutput()
	must.NoError(t, err, must.Sprintf("nomad %s:\n%s", strings.Join(args, " "), out))
	return string(out)
}

// run submits an example job with the test image.
func (e *env) run(t *testing.T, job string, vars ...string) {
	t.Helper()
	args := []string{"job", "run", "-detach", "-var", "image=" + e.image}
	for _, v := range vars {
		args = append(args, "-var", v)
	}
	e.cli(t, append(args, e.jobFile(job))...)
	t.Cleanup(func() { e.purge(t, strings.TrimSuffix(job, ".nomad.hcl")) })
}

// purge stops and purges a job (named like its file) that a failed test
// left running, and waits for its allocations to stop, so that their
// containers and networks are gone before the next test.
func (e *env) purge(t *testing.T, jobID string) {
	cl := e.nomad.API()
	allocs, _, err := cl.Jobs().Allocations(jobID, true, nil)
	if err != nil {
		return // purged already
	}
	_, _, _ = cl.Jobs().Deregister(jobID, true, nil)
	testbed.Poll(time.Minute, 250*time.Millisecond, func() bool {
		for len(allocs) > 0 {
			info, _, err := cl.Allocations().Info(allocs[0].ID, nil)
			if err == nil && !info.ClientTerminalStatus() {
				return false
			}
			allocs = allocs[1:]
		}
		return true
	})
}

// stopJob stops and purges a job and waits until none of its allocations
// runs. It does not use the CLI's own wait: Nomad 1.6's `job stop` exits 1
// when it sees the job's deployment end "cancelled", which stopping a
// service job always does.
func (e *env) stopJob(t *testing.T, jobID string) {
	t.Helper()
	cl := e.nomad.API()
	allocs, _, err := cl.Jobs().Allocations(jobID, true, nil)
	must.NoError(t, err)
	e.cli(t, "job", "stop", "-purge", "-detach", jobID)
	for _, a := range allocs {
		until(t, "allocation "+a.ID+" of "+jobID+" stopped", func() bool {
			info, _, err := cl.Allocations().Info(a.ID, nil)
			return err == nil && info.ClientTerminalStatus()
		})
	}
}

// alloc waits until an allocation of the job as registered now reaches
// status and returns it.
func (e *env) alloc(t *testing.T, jobID, status string) *api.Allocation {
	t.Helper()
	cl := e.nomad.API()
	var a *api.Allocation
	job, _, err := cl.Jobs().Info(jobID, nil)
	must.NoError(t, err)
	found := testbed.Poll(2*time.Minute, 250*time.Millisecond, func() bool {
		stubs, _, err := cl.Jobs().Allocations(jobID, true, nil)
		must.NoError(t, err)
		for _, s := range stubs {
			if s.CreateIndex < *job.CreateIndex {
				continue // of an earlier, purged job of the same name
			}
			if s.ClientStatus == status {
				a, _, err = cl.Allocations().Info(s.ID, nil)
				must.NoError(t, err)
				return true
			}
			if s.ClientStatus == "failed" && status != "failed" {
				t.Fatalf("allocation %s failed: %s", s.ID, e.cli(t, "alloc", "status", s.ID))
			}
		}
		return false
	})
	if !found {
		t.Fatalf("job %s has no %s allocation:\n%s", jobID, status, e.cli(t, "job", "status", jobID))
	}
	return a
}

// taskPID asks containerd for the PID of a task's container.
func (e *env) taskPID(t *testing.T, task, allocID string) uint32 {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), e.cd.Namespace)
	c, err := e.cd.Client.LoadContainer(ctx, task+"-"+allocID)
	must.NoError(t, err)
	tk, err := c.Task(ctx, nil)
	must.NoError(t, err)
	return tk.Pid()
}

// until retries cond (which reads CLI output) for up to 30s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testbed.Eventually(t, 30*time.Second, what, cond)
}

// untilWithin retries cond for up to timeout.
var untilWithin = testbed.Eventually

func TestExampleJobs(t *testing.T) {
	e := setup(t)
	t.Run("preflight check", func(t *testing.T) { testPreflight(t, e) })
	t.Run("batch", func(t *testing.T) { testBatch(t, e) })
	t.Run("binds", func(t *testing.T) { testBinds(t, e) })
	t.Run("userns binds", func(t *testing.T) { testUserNSBinds(t, e) })
	t.Run("service", func(t *testing.T) { testService(t, e) })
	t.Run("bridge ports", func(t *testing.T) { testBridgePorts(t, e) })
	t.Run("group bridge", func(t *testing.T) { testGroupBridge(t, e) })
	t.Run("host network", func(t *testing.T) { testHostNetwork(t, e) })
	t.Run("default network", func(t *testing.T) { testDefaultNetwork(t, e) })
	t.Run("verified image", func(t *testing.T) { testVerified(t, e) })
	t.Run("keyless image", func(t *testing.T) { testKeyless(t, e) })
	t.Run("private registry", func(t *testing.T) { testPrivateRegistry(t, e) })
	t.Run("mirror", func(t *testing.T) { testMirror(t, e) })
	t.Run("warm images", func(t *testing.T) { testWarmImages(t, e) })
	t.Run("hardened", func(t *testing.T) { testHardened(t, e) })
	t.Run("group bridge userns", func(t *testing.T) { testGroupBridgeUserNS(t, e) })
	t.Run("limits", func(t *testing.T) { testLimits(t, e) })
	t.Run("cores", func(t *testing.T) { testCores(t, e) })
	t.Run("log symlink attack", func(t *testing.T) { testLogSymlinkAttack(t, e) })
}

func testVerified(t *testing.T, e *env) {
	prefix := "trust_prefix=" + e.registry + "/demo/"
	e.run(t, "verified.nomad.hcl", prefix)
	a := e.alloc(t, "verified", "complete")
	must.StrContains(t, e.cli(t, "alloc", "logs", a.ID), "running a verified image")
	must.StrContains(t, e.cli(t, "alloc", "status", a.ID), "Image signature verified")
	e.stopJob(t, "verified")

	// the unsigned image under the same prefix fails before a container exists
	e.cli(t, "job", "run", "-detach", "-var", "image="+e.registry+"/demo/unsigned:1", "-var", prefix, e.jobFile("verified.nomad.hcl"))
	a = e.alloc(t, "verified", "failed")
	status := e.cli(t, "alloc", "status", a.ID)
	must.StrContains(t, status, "failed signature verification under trust rule")
	must.StrContains(t, status, e.registry+"/demo/unsigned")
	ctx := namespaces.WithNamespace(context.Background(), e.cd.Namespace)
	_, err := e.cd.Client.LoadContainer(ctx, "app-"+a.ID)
	must.Error(t, err)
	e.stopJob(t, "verified")
}

// The identity that signs the keyless image: a release workflow in CI.
const (
	ciIssuer  = "https://token.actions.githubusercontent.com"
	ciRelease = "https://github.com/example/payments/.github/workflows/release.yml@refs/tags/v1.0.0"
)

func testKeyless(t *testing.T, e *env) {
	job := filepath.Join(testbed.RepoRoot(), "example-jobs", "keyless.nomad.hcl")
	t.Cleanup(func() { e.purge(t, "keyless") })
	e.cli(t, "job", "run", "-detach", "-var", "image="+e.registry+"/keyless/busybox:1", job)
	a := e.alloc(t, "keyless", "complete")
	must.StrContains(t, e.cli(t, "alloc", "logs", a.ID), "running a keyless-signed image")
	status := e.cli(t, "alloc", "status", a.ID)
	must.StrContains(t, status, "Image signature verified")
	e.stopJob(t, "keyless")

	// the same image under a prefix whose rule wants keys fails
	e.cli(t, "job", "run", "-detach", "-var", "image="+e.registry+"/demo/unsigned:1", job)
	a = e.alloc(t, "keyless", "failed")
	must.StrContains(t, e.cli(t, "alloc", "status", a.ID), "failed signature verification under trust rule")
	e.stopJob(t, "keyless")
}

func testBatch(t *testing.T, e *env) {
	e.run(t, "hello.nomad.hcl")
	a := e.alloc(t, "hello", "complete")
	out := e.cli(t, "alloc", "logs", a.ID)
	must.StrContains(t, out, "Hello")
	must.Eq(t, 0, exitCode(t, a))
	e.stopJob(t, "hello")
}

func testBinds(t *testing.T, e *env) { runBinds(t, e, e.hostDir) }

// runBinds runs binds.nomad.hcl on dir, a host directory holding the
// root-owned file "input", and returns the file the task wrote there.
func runBinds(t *testing.T, e *env, dir string) os.FileInfo {
	e.run(t, "binds.nomad.hcl", "host_dir="+dir)
	a := e.alloc(t, "binds", "complete")
	out := e.cli(t, "alloc", "logs", a.ID)
	must.StrContains(t, out, "from-the-host")
	must.StrContains(t, out, "read-only-refused")
	path := filepath.Join(dir, "output")
	got, err := os.ReadFile(path)
	must.NoError(t, err)
	must.Eq(t, "written-by-task\n", string(got))
	st, err := os.Stat(path)
	must.NoError(t, err)
	e.stopJob(t, "binds")
	return st
}

func testService(t *testing.T, e *env) {
	e.run(t, "service.nomad.hcl")
	a := e.alloc(t, "service", "running")
	until(t, "heartbeat in logs", func() bool { return strings.Contains(e.cli(t, "alloc", "logs", a.ID, "web"), "beat-2") })

	out := e.cli(t, "alloc", "exec", "-task", "web", a.ID, "cat", "/local/app.conf")
	must.StrContains(t, out, "greeting = hello from web")
	out = e.cli(t, "alloc", "exec", "-task", "web", a.ID, "sh", "-c", "grep CapEff /proc/1/status")
	must.StrContains(t, out, "00000000000000e1") // chown kill setgid setuid

	e.cli(t, "alloc", "signal", "-s", "SIGHUP", a.ID, "web")
	until(t, "reload in logs", func() bool { return strings.Contains(e.cli(t, "alloc", "logs", a.ID, "web"), "reloaded") })

	// the agent crashes and comes back: the task keeps running untouched
	pid := e.taskPID(t, "web", a.ID)
	e.nomad.Kill()
	must.NoError(t, e.nomad.Restart())
	a2 := e.alloc(t, "service", "running")
	must.Eq(t, a.ID, a2.ID)
	must.Eq(t, pid, e.taskPID(t, "web", a.ID))
	for _, ev := range a2.TaskStates["web"].Events {
		must.NotEq(t, "Restarting", ev.Type, must.Sprintf("task restarted after the agent restart: %s", ev.DisplayMessage))
	}
	must.Eq(t, uint64(0), a2.TaskStates["web"].Restarts)
	beats := strings.Count(e.cli(t, "alloc", "logs", a.ID, "web"), "beat-")
	until(t, "logs flow after restart", func() bool {
		return strings.Count(e.cli(t, "alloc", "logs", a.ID, "web"), "beat-") > beats+1
	})

	// alloc stop delivers kill_signal; the trap exits 0 and the container is removed
	e.cli(t, "alloc", "stop", a.ID)
	until(t, "graceful stop", func() bool { return strings.Contains(e.cli(t, "alloc", "logs", a.ID, "web"), "bye") })
	e.stopJob(t, "service")
	until(t, "container removed", func() bool {
		ctx := namespaces.WithNamespace(context.Background(), e.cd.Namespace)
		_, err := e.cd.Client.LoadContainer(ctx, "web-"+a.ID)
		return err != nil
	})
}

func exitCode(t *testing.T, a *api.Allocation) int {
	t.Helper()
	for _, ts := range a.TaskStates {
		for _, ev := range ts.Events {
			if ev.Type == api.TaskTerminated {
				return ev.ExitCode
			}
		}
	}
	t.Fatalf("allocation %s has no terminated event", a.ID)
	return -1
}
