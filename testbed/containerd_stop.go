package testbed

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// Shims lists the PIDs of running shims attached to this daemon.
func (c *Containerd) Shims() []int {
	var pids []int
	for _, s := range c.shims() {
		pids = append(pids, s.pid)
	}
	return pids
}

type shimProc struct {
	pid    int
	ns, id string
}

func (c *Containerd) shims() []shimProc {
	var out []shimProc
	procs(func(pid int, args []string) bool {
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			return false
		}
		s := shimProc{pid: pid}
		ours := false
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "-address":
				ours = args[i+1] == c.Address
			case "-namespace":
				s.ns = args[i+1]
			case "-id":
				s.id = args[i+1]
			}
		}
		if ours {
			out = append(out, s)
		}
		return ours
	})
	return out
}

// killShims SIGKILLs shims left behind (by a daemon that died or was killed)
// and their containers, then removes what they would have: runc state and
// cgroups (`runc delete --force`) and their sockets.
func (c *Containerd) killShims() {
	left := c.shims()
	if len(left) == 0 {
		return
	}
	var pids []int
	for _, s := range left {
		pids = append(pids, s.pid)
	}
	killPIDs(append(descendants(pids), pids...))
	runc, _ := RuncBin()
	for _, s := range left {
		if s.ns == "" || s.id == "" {
			continue
		}
		if runc != "" {
			_ = exec.Command(runc, "--root", filepath.Join(c.runcRoot(), s.ns), "delete", "--force", s.id).Run()
		}
		for _, p := range []string{filepath.Join(c.Address, s.ns, s.id), filepath.Join(c.Address, s.ns, s.id, "debug")} {
			_ = os.Remove(fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(p))))
		}
	}
}

// Stop kills what runs in the daemon's namespaces, stops the daemon (SIGTERM,
// then SIGKILL after 10s), kills leftover shims it started and their
// children, unmounts everything under its root and state, and removes its
// directories. It is safe to call more than once.
func (c *Containerd) Stop() error {
	c.stopOnce.Do(func() {
		if c.Client != nil && c.proc != nil && !c.proc.exited() {
			c.killTasks()
		}
		if c.Client != nil {
			c.Client.Close()
		}
		if c.proc != nil {
			c.proc.stop(syscall.SIGTERM, 10*time.Second)
		}
		c.killShims()
		var errs []string
		for _, d := range append([]string{c.State, c.Root}, c.dirs...) {
			if err := removeTree(d); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			c.stopErr = fmt.Errorf("containerd cleanup: %s", strings.Join(errs, "; "))
		}
	})
	return c.stopErr
}

// killTasks SIGKILLs and deletes every task, then deletes every container
// with its snapshot, in every namespace, so that shims exit on their own.
func (c *Containerd) killTasks() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nss, err := c.Client.NamespaceService().List(ctx)
	if err != nil {
		return
	}
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := c.Client.Containers(nctx)
		if err != nil {
			continue
		}
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				_, _ = task.Delete(nctx, client.WithProcessKill)
			}
			_ = ctr.Delete(nctx, client.WithSnapshotCleanup)
		}
	}
}
