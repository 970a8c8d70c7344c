package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/drivers/shared/capabilities"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/shoenig/test/must"
)

// testTask lays out an allocation directory like Nomad's and returns a task
// config for it.
func testTask(t *testing.T) *drivers.TaskConfig {
	t.Helper()
	alloc := t.TempDir()
	cfg := &drivers.TaskConfig{ID: "task-1", Name: "web", AllocID: testAllocID, AllocDir: alloc, Env: map[string]string{"A": "1"}}
	td := cfg.TaskDir()
	for _, d := range []string{td.LocalDir, td.SecretsDir, td.LogDir} {
		must.NoError(t, os.MkdirAll(d, 0o755))
	}
	return cfg
}

func defaultConfig(t *testing.T) *Config {
	t.Helper()
	c := configCase(t, "", "")
	return c
}

func planFor(t *testing.T, c *Config, cfg *drivers.TaskConfig, body string) (*plan, error) {
	t.Helper()
	tc, err := parseTaskConfig(decodeTaskHCL(t, "image = \"busybox:1\"\n"+body))
	must.NoError(t, err)
	p, err := planTask(c, cfg, tc)
	if p != nil {
		t.Cleanup(p.pins.close)
	}
	return p, err
}

func TestPlanTask_Defaults(t *testing.T) {
	cfg := testTask(t)
	p, err := planFor(t, defaultConfig(t), cfg, "")
	must.NoError(t, err)
	must.Eq(t, "web-"+testAllocID, p.containerID)
	must.Eq(t, "io.containerd.runc.v2", p.runtime)
	must.Eq(t, capabilities.NomadDefaults().Slice(true), p.spec.Capabilities)
	must.SliceNotContains(t, p.spec.Capabilities, "CAP_NET_RAW")
	must.False(t, p.spec.HostNetwork) // the built-in bridge, not the host's
	must.Eq(t, "bridge", p.net.String())
	must.False(t, p.spec.Privileged)
	must.False(t, p.spec.HostPID)
	must.Eq(t, testAllocID, p.spec.ShimGroup)
	must.Eq(t, cfg.Env, p.spec.Env)

	byDst := map[string]specs.Mount{}
	for _, m := range p.spec.Mounts {
		byDst[m.Destination] = m
	}
	td := cfg.TaskDir()
	must.Eq(t, td.SharedAllocDir, byDst["/alloc"].Source)
	must.Eq(t, td.LocalDir, byDst["/local"].Source)
	must.Eq(t, td.SecretsDir, byDst["/secrets"].Source)
	must.Eq(t, td.LogDir, byDst["/alloc/logs"].Source)
	var pinned []string
	for _, b := range p.pins.binds {
		pinned = append(pinned, b.dest)
	}
	must.Eq(t, []string{"/alloc", "/local", "/secrets", "/alloc/logs"}, pinned)
	must.SliceContains(t, byDst["/alloc/logs"].Options, "ro")
	must.SliceContains(t, byDst["/local"].Options, "rw")
}

func TestPlanTask_Command(t *testing.T) {
	cases := []struct {
		body string
		want []string
	}{
		{body: "", want: nil},
		{body: `command = "sh"`, want: []string{"sh"}},
		{body: "command = \"sh\"\nargs = [\"-c\", \"true\"]", want: []string{"sh", "-c", "true"}},
		{body: `args = ["-c", "true"]`, want: []string{"-c", "true"}},
	}
	for _, c := range cases {
		p, err := planFor(t, defaultConfig(t), testTask(t), c.body)
		must.NoError(t, err)
		must.Eq(t, c.want, p.spec.Command, must.Sprint(c.body))
	}
}

func TestPlanTask_Capabilities(t *testing.T) {
	c := defaultConfig(t)
	p, err := planFor(t, c, testTask(t), "cap_drop = [\"all\"]\ncap_add = [\"chown\", \"kill\"]")
	must.NoError(t, err)
	must.Eq(t, []string{"CAP_CHOWN", "CAP_KILL"}, p.spec.Capabilities)

	_, err = planFor(t, c, testTask(t), `cap_add = ["net_raw", "sys_admin"]`)
	must.Error(t, err)
	must.StrContains(t, err.Error(), "cap_add:")
	must.StrContains(t, err.Error(), "net_raw")
	must.StrContains(t, err.Error(), "sys_admin")

	c.AllowCaps = append(c.AllowCaps, "net_raw")
	p, err = planFor(t, c, testTask(t), `cap_add = ["net_raw"]`)
	must.NoError(t, err)
	must.SliceContains(t, p.spec.Capabilities, "CAP_NET_RAW")
}

func TestPlanTask_Gates(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		enable func(*Config)
		err    string
		check  func(*testing.T, *plan)
	}{
		{name: "privileged refused", body: `privileged = true`, err: "privileged: true is refused: the plugin needs allow_privileged = true"},
		{name: "privileged allowed", body: `privileged = true`, enable: func(c *Config) { c.AllowPrivileged = true },
			check: func(t *testing.T, p *plan) { must.True(t, p.spec.Privileged) }},
		{name: "host pid refused", body: `pid_mode = "host"`, err: `pid_mode: "host" is refused: the plugin needs allow_host_pid = true`},
		{name: "host ipc refused", body: `ipc_mode = "host"`, err: `ipc_mode: "host" is refused: the plugin needs allow_host_ipc = true`},
		{name: "host pid allowed", body: `pid_mode = "host"`, enable: func(c *Config) { c.AllowHostPID = true },
			check: func(t *testing.T, p *plan) { must.True(t, p.spec.HostPID) }},
		{name: "plugin default host ipc", enable: func(c *Config) { c.AllowHostIPC = true; c.DefaultIPCMode = "host" },
			check: func(t *testing.T, p *plan) { must.True(t, p.spec.HostIPC) }},
		{name: "task private overrides default", body: `ipc_mode = "private"`, enable: func(c *Config) { c.AllowHostIPC = true; c.DefaultIPCMode = "host" },
			check: func(t *testing.T, p *plan) { must.False(t, p.spec.HostIPC) }},
		{name: "runtime refused", body: `runtime = "io.containerd.kata.v2"`, err: `runtime: "io.containerd.kata.v2" is not in the plugin's allow_runtimes`},
		{name: "runtime allowed", body: `runtime = "io.containerd.kata.v2"`,
			enable: func(c *Config) { c.AllowRuntimes = append(c.AllowRuntimes, "io.containerd.kata.v2") },
			check:  func(t *testing.T, p *plan) { must.Eq(t, "io.containerd.kata.v2", p.runtime) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := defaultConfig(t)
			if c.enable != nil {
				c.enable(conf)
			}
			p, err := planFor(t, conf, testTask(t), c.body)
			if !parsed(t, err, c.err) {
				return
			}
			c.check(t, p)
		})
	}
}

func TestPlanTask_Resources(t *testing.T) {
	cfg := testTask(t)
	cfg.Resources = &drivers.Resources{
		NomadResources: &structs.AllocatedTaskResources{Memory: structs.AllocatedMemoryResources{MemoryMB: 256, MemoryMaxMB: 512}},
		LinuxResources: &drivers.LinuxResources{CPUShares: 500, CpusetCpus: "1", MemoryLimitBytes: 256 * mib},
	}
	p, err := planFor(t, defaultConfig(t), cfg, `pids_limit = 100`)
	must.NoError(t, err)
	must.Eq(t, uint64(500), p.spec.CPUShares)
	must.Eq(t, "1", p.spec.CPUSetCPUs)
	must.Eq(t, int64(256*mib), p.spec.MemoryBytes)
	must.Eq(t, int64(512*mib), p.spec.MemoryMaxBytes)
	must.Eq(t, int64(100), p.spec.PidsLimit)

	cfg.Resources.NomadResources.Memory.MemoryMaxMB = 0
	p, err = planFor(t, defaultConfig(t), cfg, "")
	must.NoError(t, err)
	must.Eq(t, int64(0), p.spec.MemoryMaxBytes)
}

func TestPlanTask_GroupNetwork(t *testing.T) {
	cfg := testTask(t)
	cfg.NetworkIsolation = &drivers.NetworkIsolationSpec{
		Mode: drivers.NetIsolationModeGroup, Path: "/var/run/netns/abc",
		HostsConfig: &drivers.HostsConfig{Hostname: "abc123", Address: "172.26.64.5"},
	}
	p, err := planFor(t, defaultConfig(t), cfg, "")
	must.NoError(t, err)
	must.False(t, p.spec.HostNetwork)
	must.Eq(t, "/var/run/netns/abc", p.spec.NetNSPath)
	must.Eq(t, "abc123", p.spec.Hostname)
	tc, err := parseTaskConfig(decodeTaskHCL(t, `image = "busybox:1"`))
	must.NoError(t, err)
	_, err = networkFiles(cfg, tc, p.net, nil, p.pins)
	must.NoError(t, err)
	hosts, err := os.ReadFile(filepath.Join(cfg.TaskDir().Dir, "hosts"))
	must.NoError(t, err)
	must.StrContains(t, string(hosts), "172.26.64.5\tabc123\n")
	must.StrContains(t, string(hosts), "127.0.0.1\tlocalhost\n")
}
