package preflight

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// TestCheckCgroups judges fake cgroup trees: v2 lists controllers at the
// root; v1 needs a controller enabled in /proc/cgroups and mounted.
func TestCheckCgroups(t *testing.T) {
	procAll := "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t5\t1\ncpu\t1\t3\t1\nmemory\t4\t80\t1\npids\t8\t3\t1\n"
	cases := []struct {
		name       string
		v2         string   // cgroup.controllers; "" for v1
		proc       string   // /proc/cgroups for v1
		mounted    []string // v1 controller dirs
		status     Status
		wantInLine string
	}{
		{name: "v2 complete", v2: "cpuset cpu io memory hugetlb pids rdma\n", status: Pass, wantInLine: "cgroup v2 with controllers cpu, cpuset, memory, pids"},
		{name: "v2 without pids", v2: "cpuset cpu io memory\n", status: Fail, wantInLine: "cgroup v2 lacks controllers pids"},
		{name: "v2 without cpuset and memory", v2: "cpu io pids\n", status: Fail, wantInLine: "lacks controllers cpuset, memory"},
		{name: "v1 complete", proc: procAll, mounted: []string{"cpu", "cpuset", "memory", "pids"}, status: Pass, wantInLine: "cgroup v1 with controllers"},
		{name: "v1 memory disabled", proc: strings.Replace(procAll, "memory\t4\t80\t1", "memory\t0\t1\t0", 1), mounted: []string{"cpu", "cpuset", "memory", "pids"}, status: Fail, wantInLine: "cgroup v1 lacks controllers memory"},
		{name: "v1 cpuset not mounted", proc: procAll, mounted: []string{"cpu", "memory", "pids"}, status: Fail, wantInLine: "lacks controllers cpuset"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h := Host{CgroupRoot: filepath.Join(dir, "cgroup"), ProcCgroups: filepath.Join(dir, "proc-cgroups")}
			must.NoError(t, os.MkdirAll(h.CgroupRoot, 0o755))
			if tc.v2 != "" {
				must.NoError(t, os.WriteFile(filepath.Join(h.CgroupRoot, "cgroup.controllers"), []byte(tc.v2), 0o644))
			} else {
				must.NoError(t, os.WriteFile(h.ProcCgroups, []byte(tc.proc), 0o644))
				for _, c := range tc.mounted {
					must.NoError(t, os.Mkdir(filepath.Join(h.CgroupRoot, c), 0o755))
				}
			}
			r := checkCgroups(h)
			must.Eq(t, tc.status, r.Status, must.Sprint(r.Detail))
			must.StrContains(t, r.Detail, tc.wantInLine)
			if tc.status == Fail {
				must.NotEq(t, "", r.Fix)
			}
		})
	}
	r := checkCgroups(Host{CgroupRoot: t.TempDir(), ProcCgroups: filepath.Join(t.TempDir(), "none")})
	must.Eq(t, Fail, r.Status)
}

// fakePlugins makes a bin dir holding executables named as plugins.
func fakePlugins(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		must.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755))
	}
	return dir
}

// TestCheckCNI checks the built-in network's plugins and those of each
// conflist in the conf dir, and a default network naming a conflist.
func TestCheckCNI(t *testing.T) {
	conflist := func(name string, types ...string) string {
		var ps []string
		for _, ty := range types {
			ps = append(ps, `{"type": "`+ty+`"}`)
		}
		return `{"cniVersion": "1.0.0", "name": "` + name + `", "plugins": [` + strings.Join(ps, ", ") + `]}`
	}
	all := append([]string{"macvlan"}, network.RequiredPlugins...)
	cases := []struct {
		name      string
		bins      []string
		confs     map[string]string
		defMode   string
		wantFails []string // names of the failing lines
		wantText  []string
	}{
		{name: "healthy", bins: all, confs: map[string]string{"10-lan.conflist": conflist("lan", "macvlan", "host-local")}},
		{name: "portmap removed", bins: []string{"bridge", "host-local", "firewall", "loopback", "macvlan"},
			confs:     map[string]string{"10-lan.conflist": conflist("lan", "macvlan", "portmap")},
			wantFails: []string{"cni bridge", "cni lan"},
			wantText:  []string{`needs plugins portmap, missing from`, `network "lan"`}},
		{name: "bad conflist", bins: all, confs: map[string]string{"10-bad.conflist": "{not json"},
			wantFails: []string{"cni "}},
		{name: "default network missing", bins: all, defMode: "cni/lan", wantFails: []string{"cni lan"},
			wantText: []string{`default_network_mode "cni/lan" names a network`}},
		{name: "default network present", bins: all, defMode: "cni/lan", confs: map[string]string{"lan.conflist": conflist("lan", "macvlan")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			confDir := t.TempDir()
			for f, body := range tc.confs {
				must.NoError(t, os.WriteFile(filepath.Join(confDir, f), []byte(body), 0o644))
			}
			body := "cni {\n  bin_dir = \"" + fakePlugins(t, tc.bins...) + "\"\n  conf_dir = \"" + confDir + "\"\n}\n"
			if tc.defMode != "" {
				body += `default_network_mode = "` + tc.defMode + `"`
			}
			conf, res := checkConfig(writeAgentConfig(t, t.TempDir(), body))
			must.Eq(t, Pass, res.Status, must.Sprint(res.Detail))
			var fails []string
			var text strings.Builder
			for _, r := range checkCNI(conf) {
				text.WriteString(r.Detail + "\n")
				if r.Status == Fail {
					fails = append(fails, r.Name)
					must.NotEq(t, "", r.Fix)
				}
			}
			must.Eq(t, len(tc.wantFails), len(fails), must.Sprint(text.String()))
			for i, f := range tc.wantFails {
				must.StrHasPrefix(t, f, fails[i])
			}
			for _, w := range tc.wantText {
				must.StrContains(t, text.String(), w)
			}
		})
	}
}
