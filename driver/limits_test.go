package driver

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/shoenig/test/must"
)

func TestParseTaskLimits(t *testing.T) {
	const img = "image = \"busybox:1\"\n"
	cases := []struct {
		name  string
		body  string
		check func(*testing.T, TaskLimits)
		err   string
	}{
		{name: "none", body: "", check: func(t *testing.T, tl TaskLimits) {
			must.Eq(t, TaskLimits{CPUCFSPeriod: 100000}, tl)
		}},
		{name: "shm_size bytes", body: `shm_size = 134217728`, check: func(t *testing.T, tl TaskLimits) { must.Eq(t, int64(128<<20), tl.ShmSize) }},
		{name: "shm_size bytes as a string", body: `shm_size = "1048576"`, check: func(t *testing.T, tl TaskLimits) { must.Eq(t, int64(1<<20), tl.ShmSize) }},
		{name: "shm_size docker form", body: `shm_size = "64m"`, check: func(t *testing.T, tl TaskLimits) { must.Eq(t, int64(64<<20), tl.ShmSize) }},
		{name: "shm_size with unit suffix", body: `shm_size = "1GiB"`, check: func(t *testing.T, tl TaskLimits) { must.Eq(t, int64(1<<30), tl.ShmSize) }},
		{name: "shm_size zero", body: `shm_size = 0`, err: `shm_size: "0" must be greater than zero`},
		{name: "shm_size negative", body: `shm_size = "-5m"`, err: `shm_size: "-5m" is not a size`},
		{name: "shm_size garbage", body: `shm_size = "big"`, err: `shm_size: "big" is not a size in bytes or with a unit such as "64m"`},
		{name: "ulimit", body: `ulimit { nofile = "1024:2048", nproc = "256" }`, check: func(t *testing.T, tl TaskLimits) {
			must.Eq(t, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048}, {Type: "RLIMIT_NPROC", Soft: 256, Hard: 256}}, tl.Ulimits)
		}},
		{name: "ulimit unlimited", body: `ulimit { memlock = "unlimited", core = "0:-1" }`, check: func(t *testing.T, tl TaskLimits) {
			must.Eq(t, []specs.POSIXRlimit{{Type: "RLIMIT_CORE", Soft: 0, Hard: math.MaxUint64}, {Type: "RLIMIT_MEMLOCK", Soft: math.MaxUint64, Hard: math.MaxUint64}}, tl.Ulimits)
		}},
		{name: "ulimit upper case and prefix", body: `ulimit { RLIMIT_NOFILE = "10" }`, check: func(t *testing.T, tl TaskLimits) {
			must.Eq(t, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 10}}, tl.Ulimits)
		}},
		{name: "ulimit unknown name", body: `ulimit { files = "10" }`, err: `ulimit: "files" is not a resource limit; allowed are as, core,`},
		{name: "ulimit soft above hard", body: `ulimit { nofile = "2048:1024" }`, err: `ulimit: nofile = "2048:1024" has a soft limit above its hard limit`},
		{name: "ulimit not a number", body: `ulimit { nofile = "many" }`, err: `ulimit: nofile = "many" must be "soft:hard"`},
		{name: "ulimit negative", body: `ulimit { nofile = "-2" }`, err: `ulimit: nofile = "-2" must be`},
		{name: "ulimit three parts", body: `ulimit { nofile = "1:2:3" }`, err: `ulimit: nofile = "1:2:3" must be`},
		{name: "ulimit empty", body: `ulimit { nofile = "" }`, err: `ulimit: nofile = "" must be`},
		{name: "ulimit twice", body: `ulimit { nofile = "1", NOFILE = "2" }`, err: "ulimit: nofile is given twice"},
		{name: "oom_score_adj", body: `oom_score_adj = 500`, check: func(t *testing.T, tl TaskLimits) { must.Eq(t, 500, *tl.OOMScoreAdj) }},
		{name: "oom_score_adj zero is set", body: `oom_score_adj = 0`, check: func(t *testing.T, tl TaskLimits) { must.Eq(t, 0, *tl.OOMScoreAdj) }},
		{name: "oom_score_adj negative parses", body: `oom_score_adj = -1000`, check: func(t *testing.T, tl TaskLimits) { must.Eq(t, -1000, *tl.OOMScoreAdj) }},
		{name: "oom_score_adj too high", body: `oom_score_adj = 1001`, err: "oom_score_adj: 1001 is outside -1000 to 1000"},
		{name: "oom_score_adj fractional", body: `oom_score_adj = 1.5`, err: "oom_score_adj: 1.5 is not a whole number"},
		{name: "init", body: `init = true`, check: func(t *testing.T, tl TaskLimits) { must.True(t, tl.Init) }},
		{name: "cpu_hard_limit", body: "cpu_hard_limit = true\ncpu_cfs_period = 50000", check: func(t *testing.T, tl TaskLimits) {
			must.True(t, tl.CPUHardLimit)
			must.Eq(t, int64(50000), tl.CPUCFSPeriod)
		}},
		{name: "cpu_cfs_period zero", body: `cpu_cfs_period = 0`, check: func(t *testing.T, tl TaskLimits) { must.Eq(t, int64(0), tl.CPUCFSPeriod) }},
		{name: "cpu_cfs_period too short", body: `cpu_cfs_period = 999`, err: "cpu_cfs_period: 999 must be 0 (Nomad's period) or 1000 to 1000000 microseconds"},
		{name: "cpu_cfs_period too long", body: `cpu_cfs_period = 1000001`, err: "cpu_cfs_period: 1000001 must be"},
		{name: "cpu_cfs_period fractional", body: `cpu_cfs_period = 1000.5`, err: "cpu_cfs_period: 1000.5 is not a whole number"},
		{name: "group_add", body: `group_add = ["video", "44", "app-1.x"]`, check: func(t *testing.T, tl TaskLimits) {
			must.Eq(t, []string{"video", "44", "app-1.x"}, tl.GroupAdd)
		}},
		{name: "group_add empty", body: `group_add = [""]`, err: "group_add[0]: must be a GID or a group name, got an empty value"},
		{name: "group_add gid out of range", body: `group_add = ["4294967295"]`, err: "group_add[0]: GID 4294967295 is out of range"},
		{name: "group_add bad name", body: `group_add = ["ok", "a:b"]`, err: `group_add[1]: "a:b" is neither a GID nor a group name`},
		{name: "group_add leading digit name", body: `group_add = ["1abc"]`, err: `group_add[0]: "1abc" is neither`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if tc := taskCase(t, img+c.body, c.err); tc != nil {
				c.check(t, tc.Limits)
			}
		})
	}
}

func TestParseLimitsConfig(t *testing.T) {
	c := defaultConfig(t)
	must.Eq(t, LimitsConfig{InitPath: "/usr/bin/tini-static"}, c.Limits)
	c, err := parseConfig(decodePluginHCL(t, "init_path = \"/opt/tini\"\nallow_negative_oom_score_adj = true"))
	must.NoError(t, err)
	must.Eq(t, LimitsConfig{InitPath: "/opt/tini", AllowNegativeOOMScoreAdj: true}, c.Limits)
	_, err = parseConfig(decodePluginHCL(t, `init_path = "tini"`))
	must.ErrorContains(t, err, `init_path: "tini" must be the absolute path`)
}

func TestPlanTask_Limits(t *testing.T) {
	dir := t.TempDir()
	initBin := filepath.Join(dir, "tini")
	must.NoError(t, os.WriteFile(initBin, []byte("#!/bin/sh\n"), 0o755))
	notExec := filepath.Join(dir, "plain")
	must.NoError(t, os.WriteFile(notExec, nil, 0o644))
	res := &drivers.Resources{LinuxResources: &drivers.LinuxResources{CPUShares: 500, PercentTicks: 0.25, CPUPeriod: 100000}}
	cases := []struct {
		name   string
		plugin string
		body   string
		res    *drivers.Resources
		check  func(*testing.T, *plan)
		err    string
	}{
		{name: "nothing set", check: func(t *testing.T, p *plan) {
			must.Eq(t, int64(0), p.spec.ShmSize)
			must.Nil(t, p.spec.Rlimits)
			must.Nil(t, p.spec.OOMScoreAdj)
			must.Eq(t, "", p.spec.Init)
			must.Eq(t, int64(0), p.spec.CPUQuota)
			must.Nil(t, p.spec.GroupAdd)
		}},
		{name: "passed through", body: "shm_size = \"2m\"\nulimit { nofile = \"10:20\" }\noom_score_adj = 300\ngroup_add = [\"video\"]", check: func(t *testing.T, p *plan) {
			must.Eq(t, int64(2<<20), p.spec.ShmSize)
			must.Eq(t, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 20}}, p.spec.Rlimits)
			must.Eq(t, 300, *p.spec.OOMScoreAdj)
			must.Eq(t, []string{"video"}, p.spec.GroupAdd)
		}},
		{name: "negative oom_score_adj refused", body: `oom_score_adj = -500`,
			err: "oom_score_adj: -500 is refused: below zero needs the plugin's allow_negative_oom_score_adj = true"},
		{name: "negative oom_score_adj allowed", plugin: "allow_negative_oom_score_adj = true", body: `oom_score_adj = -500`,
			check: func(t *testing.T, p *plan) { must.Eq(t, -500, *p.spec.OOMScoreAdj) }},
		{name: "init", plugin: `init_path = "` + initBin + `"`, body: `init = true`, check: func(t *testing.T, p *plan) { must.Eq(t, initBin, p.spec.Init) }},
		{name: "init missing", plugin: `init_path = "` + dir + `/none"`, body: `init = true`,
			err: `init: true needs the plugin's init_path "` + dir + `/none": `},
		{name: "init not executable", plugin: `init_path = "` + notExec + `"`, body: `init = true`,
			err: `init: true needs the plugin's init_path "` + notExec + `" to be an executable file`},
		{name: "init a directory", plugin: `init_path = "` + dir + `"`, body: `init = true`, err: "to be an executable file"},
		{name: "init off ignores a missing path", plugin: `init_path = "` + dir + `/none"`, check: func(t *testing.T, p *plan) { must.Eq(t, "", p.spec.Init) }},
		{name: "cpu_hard_limit as the docker driver", body: "cpu_hard_limit = true", check: func(t *testing.T, p *plan) {
			must.Eq(t, uint64(100000), p.spec.CPUPeriod)
			must.Eq(t, int64(25000*runtime.NumCPU()), p.spec.CPUQuota)
		}},
		{name: "cpu_cfs_period", body: "cpu_hard_limit = true\ncpu_cfs_period = 20000", check: func(t *testing.T, p *plan) {
			must.Eq(t, uint64(20000), p.spec.CPUPeriod)
			must.Eq(t, int64(5000*runtime.NumCPU()), p.spec.CPUQuota)
		}},
		{name: "cpu_cfs_period zero takes Nomad's", body: "cpu_hard_limit = true\ncpu_cfs_period = 0",
			res: &drivers.Resources{LinuxResources: &drivers.LinuxResources{PercentTicks: 0.5, CPUPeriod: 10000}}, check: func(t *testing.T, p *plan) {
				must.Eq(t, uint64(10000), p.spec.CPUPeriod)
				must.Eq(t, int64(5000*runtime.NumCPU()), p.spec.CPUQuota)
			}},
		{name: "cpu quota at least the kernel's minimum", body: "cpu_hard_limit = true\ncpu_cfs_period = 1000",
			res: &drivers.Resources{LinuxResources: &drivers.LinuxResources{PercentTicks: 0.0001}}, check: func(t *testing.T, p *plan) {
				must.Eq(t, int64(1000), p.spec.CPUQuota)
			}},
		{name: "cpu_hard_limit without a share", body: "cpu_hard_limit = true", res: &drivers.Resources{},
			err: "cpu_hard_limit: true needs the task's share of the node's CPU"},
		{name: "cpu_cfs_period alone sets no quota", body: "cpu_cfs_period = 20000", check: func(t *testing.T, p *plan) {
			must.Eq(t, int64(0), p.spec.CPUQuota)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pc, err := parseConfig(decodePluginHCL(t, c.plugin))
			must.NoError(t, err)
			cfg := testTask(t)
			cfg.Resources = res
			if c.res != nil {
				cfg.Resources = c.res
			}
			p, err := planFor(t, pc, cfg, c.body)
			if parsed(t, err, c.err) {
				c.check(t, p)
			}
		})
	}
}
