//go:build integration

package executor_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

// StageIDMapped makes the marked binds idmapped clones in the staging
// directory, seen from the host through the mapping (a file of host ID n
// shows as the range's n), keeps read-only ones read-only, leaves other
// mounts as they are, and ReleaseStaged leaves nothing behind; a source
// that cannot be staged leaves nothing either. The same with the user
// namespace made ahead (WarmUserNS).
func TestStageIDMapped(t *testing.T) {
	const host = 1 << 31
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: 65536}}
	t.Run("made at staging", func(t *testing.T) { testStageIDMapped(t, m) })
	t.Run("made ahead", func(t *testing.T) {
		executor.WarmUserNS(m)
		idmap, f := executor.AheadUserNS()
		must.Eq(t, "0:2147483648:65536", idmap)
		must.NotNil(t, f)
		testStageIDMapped(t, m)
		idmap, _ = executor.AheadUserNS()
		must.Eq(t, "", idmap, must.Sprint("the staging did not take the namespace made ahead"))
	})
}

func testStageIDMapped(t *testing.T, m []specs.LinuxIDMapping) {
	host := m[0].HostID
	root := filepath.Join(t.TempDir(), "staging")

	rw, ro, plain := t.TempDir(), t.TempDir(), t.TempDir()
	must.NoError(t, os.WriteFile(filepath.Join(rw, "f"), nil, 0o644))
	must.NoError(t, os.Chown(filepath.Join(rw, "f"), 1000, 1000))
	hosts := filepath.Join(t.TempDir(), "hosts")
	must.NoError(t, os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644))
	idmap := executor.IDMapOption
	mounts := []specs.Mount{
		{Type: "bind", Source: rw, Destination: "/rw", Options: []string{"rbind", "rw", idmap}},
		{Type: "bind", Source: ro, Destination: "/ro", Options: []string{"rbind", "ro", idmap, "rprivate"}},
		{Type: "bind", Source: plain, Destination: "/plain", Options: []string{"rbind", "rw"}},
		{Type: "bind", Source: hosts, Destination: "/etc/hosts", Options: []string{"rbind", "ro", idmap}},
	}
	dir := filepath.Join(root, "hash", "web-1")
	must.NoError(t, executor.StageIDMapped(dir, mounts, m))
	t.Cleanup(func() { _ = executor.ReleaseStaged(dir) })
	under := mountsUnder(t, root)
	must.MapContainsKey(t, under, dir, must.Sprint("the staging directory is not a mount of its own"))
	must.StrNotContains(t, under[dir], "shared:", must.Sprint("the staging directory propagates"))

	for _, tc := range []struct {
		dst, source, file string
		uid               uint32
		opts              []string
	}{
		{"/rw", filepath.Join(dir, "0"), "f", host + 1000, []string{"rbind", "rw"}},
		{"/ro", filepath.Join(dir, "1"), ".", host, []string{"rbind", "ro", "rprivate"}},
		{"/plain", plain, ".", 0, []string{"rbind", "rw"}},
		{"/etc/hosts", filepath.Join(dir, "3"), ".", host, []string{"rbind", "ro"}},
	} {
		t.Run(tc.dst, func(t *testing.T) {
			var got specs.Mount
			for _, mnt := range mounts {
				if mnt.Destination == tc.dst {
					got = mnt
				}
			}
			must.Eq(t, tc.source, got.Source)
			must.Eq(t, tc.opts, got.Options)
			st, err := os.Stat(filepath.Join(got.Source, tc.file))
			must.NoError(t, err)
			must.Eq(t, tc.uid, st.Sys().(*syscall.Stat_t).Uid)
		})
	}
	err := os.WriteFile(filepath.Join(dir, "1", "f"), nil, 0o644)
	must.True(t, errors.Is(err, syscall.EROFS), must.Sprintf("write to a read-only staged bind: %v", err))
	// the host's root is outside the mapping: it cannot create files there
	err = os.WriteFile(filepath.Join(dir, "0", "g"), nil, 0o644)
	must.True(t, errors.Is(err, syscall.EOVERFLOW), must.Sprintf("host root's write through the mapping: %v", err))

	must.NoError(t, executor.ReleaseStaged(dir))
	_, err = os.Stat(dir)
	must.ErrorIs(t, err, os.ErrNotExist)
	must.MapEmpty(t, mountsUnder(t, root))
	must.NoError(t, executor.ReleaseStaged(dir))

	bad := []specs.Mount{
		{Type: "bind", Source: rw, Destination: "/rw", Options: []string{"rbind", "rw", idmap}},
		{Type: "bind", Source: filepath.Join(rw, "missing"), Destination: "/x", Options: []string{"rbind", "rw", idmap}},
	}
	err = executor.StageIDMapped(dir, bad, m)
	must.ErrorContains(t, err, "missing")
	_, err = os.Stat(dir)
	must.ErrorIs(t, err, os.ErrNotExist)
	must.MapEmpty(t, mountsUnder(t, root))
}

// mountsUnder maps the mount points at or below root to their optional
// fields (propagation) in /proc/self/mountinfo.
func mountsUnder(t *testing.T, root string) map[string]string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	must.NoError(t, err)
	out := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 6 && (f[4] == root || strings.HasPrefix(f[4], root+"/")) {
			out[f[4]] = strings.Join(f[6:slices.Index(f, "-")], " ")
		}
	}
	return out
}

// WarmUserNS makes the namespace of a mapping ahead; the next one asked
// for with that mapping is that one, later ones are new; warming another
// mapping once it is made replaces it, and asking for one not warmed
// makes a new one.
func TestWarmUserNS(t *testing.T) {
	ino := func(f *os.File) uint64 {
		t.Helper()
		st, err := f.Stat()
		must.NoError(t, err)
		return st.Sys().(*syscall.Stat_t).Ino
	}
	take := func(idmap string) uint64 {
		t.Helper()
		f, err := executor.UserNSFD(idmap)
		must.NoError(t, err)
		defer f.Close()
		return ino(f)
	}
	a := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1 << 30, Size: 65536}}
	b := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1<<30 + 65536, Size: 65536}}
	const idmapA, idmapB = "0:1073741824:65536", "0:1073807360:65536"

	executor.WarmUserNS(a)
	executor.WarmUserNS(a) // already in the making: kept
	idmap, f := executor.AheadUserNS()
	must.Eq(t, idmapA, idmap)
	ahead := ino(f)
	must.Eq(t, ahead, take(idmapA))
	again := take(idmapA)
	must.NotEq(t, ahead, again, must.Sprint("the namespace made ahead was handed out twice"))

	executor.WarmUserNS(a)
	executor.AheadUserNS() // made: another mapping replaces it
	executor.WarmUserNS(b)
	idmap, f = executor.AheadUserNS()
	must.Eq(t, idmapB, idmap)
	ahead = ino(f)
	must.NotEq(t, ahead, take(idmapA))
	must.Eq(t, ahead, take(idmapB))
	idmap, _ = executor.AheadUserNS()
	must.Eq(t, "", idmap)
}

// StageRootFS attaches one read-only idmapped clone of the layers' common
// directory in a directory only root may enter, and returns the overlay
// on it without the mapping options; ReleaseStaged leaves nothing.
func TestStageRootFS(t *testing.T) {
	const host = 1 << 31
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: 65536}}
	snaps := filepath.Join(t.TempDir(), "snapshots")
	for _, d := range []string{"1/fs", "2/fs"} {
		must.NoError(t, os.MkdirAll(filepath.Join(snaps, d), 0o755))
	}
	must.NoError(t, os.WriteFile(filepath.Join(snaps, "1/fs/f"), nil, 0o644))
	must.NoError(t, os.Chown(filepath.Join(snaps, "1/fs/f"), 1000, 1000))
	root := filepath.Join(t.TempDir(), "staging")
	dir := filepath.Join(root, "hash-web-1")
	s := executor.PlanIDMapped(dir, nil, m)
	t.Cleanup(func() { s.Close(); _ = executor.ReleaseStaged(dir) })

	_, err := s.StageRootFS([]mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a"}}})
	must.ErrorContains(t, err, "is not one overlay with idmapped layers")

	got, err := s.StageRootFS([]mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"index=off", "workdir=/w", "upperdir=/u",
		"lowerdir=" + filepath.Join(snaps, "2/fs") + ":" + filepath.Join(snaps, "1/fs"),
		"uidmap=0:2147483648:65536", "gidmap=0:2147483648:65536"}}})
	must.NoError(t, err)
	layers := filepath.Join(dir, "rootfs", "layers")
	must.Eq(t, []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"index=off", "workdir=/w", "upperdir=/u",
		"lowerdir=" + filepath.Join(layers, "2/fs") + ":" + filepath.Join(layers, "1/fs")}}}, got)
	st, err := os.Stat(filepath.Join(dir, "rootfs"))
	must.NoError(t, err)
	must.Eq(t, os.FileMode(0o700), st.Mode().Perm(), must.Sprint("others may enter the layers' staging directory"))
	st, err = os.Stat(filepath.Join(layers, "1/fs/f"))
	must.NoError(t, err)
	must.Eq(t, uint32(host+1000), st.Sys().(*syscall.Stat_t).Uid)
	err = os.WriteFile(filepath.Join(layers, "1/fs/g"), nil, 0o644)
	must.True(t, errors.Is(err, syscall.EROFS), must.Sprintf("write to the staged layers: %v", err))

	s.Close()
	must.NoError(t, executor.ReleaseStaged(dir))
	_, err = os.Stat(dir)
	must.ErrorIs(t, err, os.ErrNotExist)
	must.MapEmpty(t, mountsUnder(t, root))
}
