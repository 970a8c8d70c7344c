// Package preflight checks a Nomad client node for the driver before (or
// after) the plugin is installed there: it validates the plugin block of
// the agent's config with the driver's own schema and validation, then
// checks what the driver needs of the node: containerd, the runtime, the
// snapshotter, CNI plugins, cgroup controllers and the files the config
// names. `nomad-driver-containerd check` runs it.
package preflight

import (
	"context"
	"time"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
)

// Status is the outcome of one check.
type Status string

const (
	// Pass: the driver can do what the check is about.
	Pass Status = "pass"
	// Warn: it can, but the operator should know something (a runc without
	// a breakout fix, a feature that will not be available).
	Warn Status = "warn"
	// Fail: the driver cannot do it; the command exits non-zero.
	Fail Status = "fail"
)

// Result is one check's line.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Report is every check of one run.
type Report struct {
	OK     bool     `json:"ok"`
	Checks []Result `json:"checks"`
}

// Host is where the node probes look; the zero value is the real node.
type Host struct {
	CgroupRoot  string // default /sys/fs/cgroup
	ProcCgroups string // default /proc/cgroups
}

func (h Host) withDefaults() Host {
	if h.CgroupRoot == "" {
		h.CgroupRoot = "/sys/fs/cgroup"
	}
	if h.ProcCgroups == "" {
		h.ProcCgroups = "/proc/cgroups"
	}
	return h
}

// Options are what Run checks.
type Options struct {
	// ConfigPath is the agent's config file or directory; "" checks the
	// defaults (an agent without a plugin "containerd" block).
	ConfigPath string
	Host       Host
	// Timeout bounds each containerd call (default 5s).
	Timeout time.Duration
}

// Run checks the node. Without a valid plugin config nothing else can be
// judged, so the report then holds the config line alone.
func Run(ctx context.Context, o Options) Report {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	var r Report
	conf, pluginDir, res := checkAgent(o.ConfigPath)
	r.Checks = append(r.Checks, res)
	if pluginDir != "" {
		r.Checks = append(r.Checks, checkPluginBinary(pluginDir))
	}
	if conf != nil {
		r.Checks = append(r.Checks, checkContainerd(ctx, conf, o.Timeout)...)
		r.Checks = append(r.Checks, checkCNI(conf)...)
		r.Checks = append(r.Checks, checkCgroups(o.Host.withDefaults()))
		r.Checks = append(r.Checks, checkFiles(ctx, conf)...)
		r.Checks = append(r.Checks, checkFeatures(conf)...)
	}
	r.OK = true
	for _, c := range r.Checks {
		if c.Status == Fail {
			r.OK = false
		}
	}
	return r
}

// config is what the checks read of the validated config.
type config = driver.Config
