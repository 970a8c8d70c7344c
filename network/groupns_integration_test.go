//go:build integration

package network

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/shoenig/test/must"
)

// A group namespace is made once, found again with created false (with
// its low ports opened again), replaces a stale file at its name, and is
// removed idempotently; a bad allocation ID makes nothing.
func TestGroupNetNS(t *testing.T) {
	e := newEnv(t)
	alloc := e.id()
	path, created, err := e.m.CreateGroupNetNS(alloc)
	must.NoError(t, err)
	t.Cleanup(func() { _ = e.m.RemoveGroupNetNS(alloc) })
	must.True(t, created)
	must.Eq(t, filepath.Join(e.nsDir, alloc), path)
	must.NoError(t, checkNetNS(path))
	const sysctl = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
	must.Eq(t, "0\n", run(t, "nsenter", "--net="+path, "cat", sysctl))
	must.StrContains(t, run(t, "nsenter", "--net="+path, "ip", "-o", "link", "show", "lo"), ",UP")
	inode := func() uint64 {
		st, err := os.Stat(path)
		must.NoError(t, err)
		return st.Sys().(*syscall.Stat_t).Ino
	}
	first := inode()

	// asked again (a restarted client): the same namespace, its ports
	// below 1024 opened again (one a Nomad client made before has them shut)
	run(t, "nsenter", "--net="+path, "sh", "-c", "echo 1024 > "+sysctl)
	again, created, err := e.m.CreateGroupNetNS(alloc)
	must.NoError(t, err)
	must.False(t, created)
	must.Eq(t, path, again)
	must.Eq(t, first, inode())
	must.Eq(t, "0\n", run(t, "nsenter", "--net="+path, "cat", sysctl))

	must.NoError(t, e.m.RemoveGroupNetNS(alloc))
	_, err = os.Stat(path)
	must.True(t, errors.Is(err, fs.ErrNotExist))
	must.NoError(t, e.m.RemoveGroupNetNS(alloc))

	// a plain file left at the name by a crash is replaced
	must.NoError(t, os.WriteFile(path, nil, 0o444))
	_, created, err = e.m.CreateGroupNetNS(alloc)
	must.NoError(t, err)
	must.True(t, created)
	must.NoError(t, checkNetNS(path))
	must.NoError(t, e.m.RemoveGroupNetNS(alloc))

	for _, bad := range []string{"", "../" + alloc, "a/b"} {
		_, _, err := e.m.CreateGroupNetNS(bad)
		must.ErrorContains(t, err, "alloc id")
		must.ErrorContains(t, e.m.RemoveGroupNetNS(bad), "alloc id")
	}
	entries, err := os.ReadDir(e.nsDir)
	must.NoError(t, err)
	must.SliceEmpty(t, entries)
}
