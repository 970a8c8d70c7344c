//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// crunBin is Debian's crun (`hack/deps.sh bench`).
const crunBin = "/usr/bin/crun"

// crunShim writes a shim that containerd runs by its path (a runtime named
// by an absolute path): the runc shim with crun in the place of runc, its
// state in dir. The runc shim runs the `runc` it finds first in PATH; here
// that is crun, with the shim's --root moved from containerd's shared
// /run/containerd/runc into dir.
func (p *peers) writeCrunShim() string {
	t := p.b.t
	dir := t.TempDir()
	shim, err := testbed.LookBin("containerd-shim-runc-v2")
	must.NoError(t, err)
	runc := fmt.Sprintf(`#!/bin/sh
# crun in the place of runc, its state under %[1]s
first=1
for a in "$@"; do
  [ "$first" = 1 ] && set -- && first=0
  case "$a" in
    /run/containerd/runc/*) a="%[1]s/state/${a#/run/containerd/runc/}" ;;
  esac
  set -- "$@" "$a"
done
exec %[2]s "$@"
`, dir, crunBin)
	wrapper := fmt.Sprintf("#!/bin/sh\n# the runc shim, running crun\nPATH=%s:$PATH exec %s \"$@\"\n", dir, shim)
	for name, body := range map[string]string{"runc": runc, "containerd-shim-crun-v2": wrapper} {
		must.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755))
	}
	return filepath.Join(dir, "containerd-shim-crun-v2")
}

// crunPeer is this plugin's task on the host network run by crun.
func (p *peers) crunPeer() peer {
	pr := containerdPeer("host")
	pr.name = "containerd + crun, host"
	pr.config["runtime"] = p.crun
	return pr
}

// crunRow: the same start with crun against runc.
func crunRow(crun, runc Summary) Row {
	return Row{Name: "peers: start, host, crun vs runc", Unit: "ms", Driver: crun, Baseline: &runc,
		BaselineName: "this driver with runc"}
}

// crunWorks starts one crun task and says why it failed ("" when it ran):
// Debian 12's crun 1.8.1 refuses containerd 2's runtime spec (version
// 1.2) and cgroup v1 hosts with controllers on the unified hierarchy.
func (p *peers) crunWorks() string {
	job := p.job(p.crunPeer(), 1)
	allocs, err := p.tryRun(job)
	if err != nil {
		return err.Error()
	}
	p.purge(job, allocs)
	return ""
}
