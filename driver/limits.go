package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	"github.com/hashicorp/nomad/plugins/drivers"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// Process limits of a task under the names docker and Roblox users know:
// shm_size, ulimit, oom_score_adj, init, cpu_hard_limit / cpu_cfs_period
// and group_add.

// LimitsConfig is the plugin's part of the task limits.
type LimitsConfig struct {
	// InitPath is the host's static init binary that `init = true` runs
	// as PID 1.
	InitPath string
	// AllowNegativeOOMScoreAdj lets a task make itself less likely to be
	// chosen by the OOM killer than the host's processes.
	AllowNegativeOOMScoreAdj bool
}

// defaultInitPath is Debian's static tini (package tini).
const defaultInitPath = "/usr/bin/tini-static"

// parseLimitsConfig validates the plugin's limit options; an empty
// init_path takes the default (the schema gives the same one).
func parseLimitsConfig(initPath string, allowNegativeOOMScoreAdj bool) (LimitsConfig, error) {
	if initPath == "" {
		initPath = defaultInitPath
	}
	if !filepath.IsAbs(initPath) {
		return LimitsConfig{}, fmt.Errorf("init_path: %q must be the absolute path of a static init binary such as %q", initPath, "/usr/bin/tini-static")
	}
	return LimitsConfig{InitPath: initPath, AllowNegativeOOMScoreAdj: allowNegativeOOMScoreAdj}, nil
}

// TaskLimits is the task's validated limit options.
type TaskLimits struct {
	ShmSize      int64 // bytes; 0: containerd's default of 64 MiB
	Ulimits      []specs.POSIXRlimit
	OOMScoreAdj  *int
	Init         bool
	CPUHardLimit bool
	CPUCFSPeriod int64 // microseconds; 0: Nomad's period
	GroupAdd     []string
}

// rawTaskLimits is the limits part of a task's config.
type rawTaskLimits struct {
	ShmSize      string
	Ulimit       []map[string]string
	OOMScoreAdj  any
	Init         bool
	CPUHardLimit bool
	CPUCFSPeriod any
	GroupAdd     []string
}

// The kernel's bounds of a CFS period (and lower bound of a quota), in
// microseconds.
const (
	minCFSPeriod = 1000
	maxCFSPeriod = 1000000
)

func parseTaskLimits(raw rawTaskLimits) (TaskLimits, error) {
	tl := TaskLimits{Init: raw.Init, CPUHardLimit: raw.CPUHardLimit}
	var err error
	if tl.ShmSize, err = parseShmSize(raw.ShmSize); err != nil {
		return tl, err
	}
	ulimits, err := flattenMaps("ulimit", raw.Ulimit)
	if err != nil {
		return tl, err
	}
	if tl.Ulimits, err = parseUlimits(ulimits); err != nil {
		return tl, err
	}
	if raw.OOMScoreAdj != nil {
		adj, err := wholeNumber("oom_score_adj", raw.OOMScoreAdj)
		if err != nil {
			return tl, err
		}
		if adj < -1000 || adj > 1000 {
			return tl, fmt.Errorf("oom_score_adj: %d is outside -1000 to 1000", adj)
		}
		a := int(adj)
		tl.OOMScoreAdj = &a
	}
	if tl.CPUCFSPeriod, err = wholeNumber("cpu_cfs_period", raw.CPUCFSPeriod); err != nil {
		return tl, err
	}
	if p := tl.CPUCFSPeriod; p != 0 && (p < minCFSPeriod || p > maxCFSPeriod) {
		return tl, fmt.Errorf("cpu_cfs_period: %d must be 0 (Nomad's period) or %d to %d microseconds", p, minCFSPeriod, maxCFSPeriod)
	}
	for i, g := range raw.GroupAdd {
		if err := checkGroup(fmt.Sprintf("group_add[%d]", i), g); err != nil {
			return tl, err
		}
	}
	tl.GroupAdd = raw.GroupAdd
	return tl, nil
}

// parseShmSize reads a size in bytes, or docker's form with a unit
// ("64m", "1g", "512k", "128MiB").
func parseShmSize(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		if n, err = units.RAMInBytes(v); err != nil {
			return 0, fmt.Errorf("shm_size: %q is not a size in bytes or with a unit such as %q", v, "64m")
		}
	}
	if n <= 0 {
		return 0, fmt.Errorf("shm_size: %q must be greater than zero", v)
	}
	return n, nil
}

// checkGroup accepts a GID or a group name as shadow-utils allows them.
func checkGroup(field, g string) error {
	if g == "" {
		return fmt.Errorf("%s: must be a GID or a group name, got an empty value", field)
	}
	if n, err := strconv.ParseUint(g, 10, 32); err == nil {
		if n > 1<<31-1 {
			return fmt.Errorf("%s: GID %s is out of range", field, g)
		}
		return nil
	}
	for i, r := range g {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '.')) {
			return fmt.Errorf("%s: %q is neither a GID nor a group name (letters, digits, '_', '-', '.')", field, g)
		}
	}
	return nil
}

// planLimits applies the plugin's gates to the task's limits and sets them
// on the spec. The CPU quota follows Nomad's docker driver: the task's
// share of the node's compute, per period, times the cores this process
// may use.
func planLimits(lc LimitsConfig, tl TaskLimits, r *drivers.Resources, s *executor.SpecConfig) error {
	s.ShmSize = tl.ShmSize
	s.Rlimits = tl.Ulimits
	s.GroupAdd = tl.GroupAdd
	if adj := tl.OOMScoreAdj; adj != nil {
		if *adj < 0 && !lc.AllowNegativeOOMScoreAdj {
			return fmt.Errorf("oom_score_adj: %d is refused: below zero needs the plugin's allow_negative_oom_score_adj = true", *adj)
		}
		s.OOMScoreAdj = adj
	}
	if tl.Init {
		if err := checkInit(lc.InitPath); err != nil {
			return err
		}
		s.Init = lc.InitPath
	}
	if tl.CPUHardLimit {
		var lr drivers.LinuxResources
		if r != nil && r.LinuxResources != nil {
			lr = *r.LinuxResources
		}
		if lr.PercentTicks <= 0 {
			return fmt.Errorf("cpu_hard_limit: true needs the task's share of the node's CPU, which Nomad did not give")
		}
		period := tl.CPUCFSPeriod
		if period == 0 {
			period = lr.CPUPeriod
		}
		if period == 0 {
			period = 100000
		}
		s.CPUPeriod = uint64(period)
		s.CPUQuota = max(int64(lr.PercentTicks*float64(period))*int64(runtime.NumCPU()), minCFSPeriod)
	}
	return nil
}

// checkInit makes sure the init binary is an executable file.
func checkInit(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("init: true needs the plugin's init_path %q: %w (install Debian's tini package, or set init_path to a static init binary)", path, err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("init: true needs the plugin's init_path %q to be an executable file, it is %s", path, st.Mode())
	}
	return nil
}
