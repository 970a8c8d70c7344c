//go:build integration

package driver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// The idmapped binds of a task in its own user namespace are made by the
// driver in a staging directory, and runc gets plain binds of them: the
// spec runc received has no mapping on any mount, the binds still map
// ownership and keep read-only binds read-only, and no staged mount is
// left once the container is created, after a failed start or after a
// plugin that died while it created one.
func TestIDMapStaging(t *testing.T) {
	b := newCheckedBed(t)
	t.Run("plain binds in the spec", func(t *testing.T) { testStagedSpec(t, b) })
	t.Run("failed start", func(t *testing.T) { testStagedFailedStart(t, b) })
	t.Run("left by a killed plugin", func(t *testing.T) { testStagedSweep(t, b) })
}

func testStagedSpec(t *testing.T, b *bed) {
	ro, rw := t.TempDir(), t.TempDir()
	for _, d := range []string{ro, rw} {
		must.NoError(t, os.Chmod(d, 0o755))
	}
	raw := sh(`(echo x > /ro/f) 2>/dev/null && echo ro-written || echo ro-refused; ` +
		`(echo x > /alloc/logs/f) 2>/dev/null && echo logs-written || echo logs-refused; ` +
		`touch /local/f /rw/f && echo written; echo ready; exec sleep 300`)
	raw.UserNSMode = "auto"
	raw.Volumes = []string{ro + ":/ro:ro,idmap", rw + ":/rw:idmap"}
	task := newTask(t, raw)
	h := b.harness(t, volumesPlugin(ro, rw))
	start(t, h, task)
	eventually(t, "ready", func() bool { return strings.Contains(logs(t, task, "stdout"), "ready") })
	out := logs(t, task, "stdout")
	must.StrContains(t, out, "ro-refused")
	must.StrContains(t, out, "logs-refused")
	must.StrContains(t, out, "written")
	for _, p := range []string{filepath.Join(task.TaskDir().LocalDir, "f"), filepath.Join(rw, "f")} {
		st, err := os.Stat(p)
		must.NoError(t, err)
		must.Eq(t, 0, st.Sys().(*syscall.Stat_t).Uid, must.Sprintf("owner of %s", p))
	}
	_, err := os.Stat(filepath.Join(ro, "f"))
	must.ErrorIs(t, err, os.ErrNotExist)

	id := containerID(task.Name, task.AllocID)
	ctx := namespaces.WithNamespace(context.Background(), b.cd.Namespace)
	c, err := b.cd.Client.LoadContainer(ctx, id)
	must.NoError(t, err)
	spec, err := c.Spec(ctx)
	must.NoError(t, err)
	must.SliceNotEmpty(t, spec.Linux.UIDMappings, must.Sprint("the container has no user namespace"))
	staged := map[string]bool{}
	for _, m := range spec.Mounts {
		must.SliceEmpty(t, m.UIDMappings, must.Sprintf("uidMappings on the mount at %s", m.Destination))
		must.SliceEmpty(t, m.GIDMappings, must.Sprintf("gidMappings on the mount at %s", m.Destination))
		must.SliceNotContains(t, m.Options, executor.IDMapOption)
		if strings.HasPrefix(m.Source, stagingPrefix(b.cd.Address)) {
			staged[m.Destination] = true
		}
	}
	for _, dst := range []string{"/alloc", "/local", "/secrets", "/alloc/logs", "/ro", "/rw"} {
		must.True(t, staged[dst], must.Sprintf("the bind at %s was not staged: %v", dst, spec.Mounts))
	}
	noStaged(t, b)

	must.NoError(t, h.StopTask(task.ID, time.Second, "SIGKILL"))
	must.NoError(t, h.DestroyTask(task.ID, true))
	noStaged(t, b)
}

// testStagedFailedStart: the container's creation fails after its binds
// were staged (its program does not exist).
func testStagedFailedStart(t *testing.T, b *bed) {
	raw := rawTaskConfig{UserNSMode: "auto", Entrypoint: []string{"/no/such/program"}}
	task := newTask(t, raw)
	h := b.harness(t, "")
	t.Cleanup(h.MkAllocDir(task, true))
	_, _, err := h.StartTask(task)
	must.ErrorContains(t, err, "/no/such/program")
	noStaged(t, b)
	b.nothingLeft(t, task)
}

// testStagedSweep: a plugin killed while it created a container left its
// staged binds; the next plugin's reconciler releases those of every
// container it holds no task for.
func testStagedSweep(t *testing.T, b *bed) {
	src := t.TempDir()
	dir := stagingPrefix(b.cd.Address) + "web-left-by-a-dead-start"
	mounts := []specs.Mount{{Type: "bind", Source: src, Destination: "/data", Options: []string{"rbind", "rw", executor.IDMapOption}}}
	must.NoError(t, executor.StageIDMapped(dir, mounts, []specs.LinuxIDMapping{{ContainerID: 0, HostID: defaultIDRangeStart, Size: 65536}}))
	t.Cleanup(func() { _ = executor.ReleaseStaged(dir) })
	must.Eq(t, filepath.Join(dir, "0"), mounts[0].Source)
	must.SliceContains(t, stagedMounts(t, b), filepath.Join(dir, "0"))

	b.harness(t, `gc {
 container_grace = "1s"
}`)
	testbed.Eventually(t, 10*time.Second, "the staged binds released", func() bool {
		_, err := os.Stat(dir)
		return len(stagedMounts(t, b)) == 0 && os.IsNotExist(err)
	})
}

// noStaged checks that nothing is staged for the bed's containerd.
func noStaged(t *testing.T, b *bed) {
	t.Helper()
	must.SliceEmpty(t, stagedMounts(t, b))
	entries, err := os.ReadDir(idmapStagingRoot)
	if !os.IsNotExist(err) {
		must.NoError(t, err)
	}
	for _, e := range entries {
		must.StrNotHasPrefix(t, stagingPrefix(b.cd.Address), filepath.Join(idmapStagingRoot, e.Name()), must.Sprint("a staging directory is left"))
	}
}

// stagedMounts lists the mounts in the bed's staging directory.
func stagedMounts(t *testing.T, b *bed) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	must.NoError(t, err)
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], stagingPrefix(b.cd.Address)) {
			out = append(out, f[4])
		}
	}
	return out
}
