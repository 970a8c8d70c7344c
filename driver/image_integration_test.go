//go:build integration

package driver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// imageBed is a hermetic containerd and a TLS registry with basic auth
// holding busybox under several names, some signed by the real cosign.
type imageBed struct {
	*bed
	reg        *testbed.Registry
	hostsDir   string
	authConfig string // docker config.json with the registry's account
	trustKey   string // public key that signed the "signed/" images
	otherKey   string // a key that signed nothing we pull
}

func newImageBed(t *testing.T) *imageBed {
	t.Helper()
	b := newCheckedBed(t)
	reg := testbed.StartRegistry(t, testbed.RegistryOptions{TLS: true, User: "ndc", Password: "s3cret-pw"})
	hostsDir, err := reg.WriteHostsDir(t.TempDir())
	must.NoError(t, err)
	ib := &imageBed{bed: b, reg: reg, hostsDir: hostsDir}

	cfg := map[string]any{"auths": map[string]any{reg.Host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))}}}
	data, err := json.Marshal(cfg)
	must.NoError(t, err)
	ib.authConfig = filepath.Join(t.TempDir(), "config.json")
	must.NoError(t, os.WriteFile(ib.authConfig, data, 0o600))

	img, err := testbed.BuildBusybox()
	must.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cosign := testbed.NewCosign(t)
	key := cosign.GenerateKeyPair(t, "trusted")
	other := cosign.GenerateKeyPair(t, "other")
	ib.trustKey, ib.otherKey = key.Public, other.Public
	for _, repo := range []string{"plain/busybox:1", "signed/busybox:1", "signed/unsigned:1", "signed/byother:1"} {
		dgst, err := reg.Push(ctx, img, repo)
		must.NoError(t, err)
		name := reg.Host + "/" + strings.Split(repo, ":")[0] + "@" + dgst.String()
		switch repo {
		case "signed/busybox:1":
			must.NoError(t, cosign.Sign(ctx, key.Private, name, testbed.SignOptionsFor(reg)))
		case "signed/byother:1":
			// same image content, other repository: signed with the other key
			must.NoError(t, cosign.Sign(ctx, other.Private, name, testbed.SignOptionsFor(reg)))
		}
	}
	cosign.CheckOffline(t)
	return ib
}

func (ib *imageBed) ref(repo string) string { return ib.reg.Host + "/" + repo }

// events collects the driver's task events for one task.
type events struct {
	mu   sync.Mutex
	msgs []string
}

func collectEvents(t *testing.T, h *testbed.Harness, taskID string) *events {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := h.TaskEvents(ctx)
	must.NoError(t, err)
	ev := &events{}
	go func() {
		for e := range ch {
			if e.TaskID == taskID {
				ev.mu.Lock()
				ev.msgs = append(ev.msgs, e.Message)
				ev.mu.Unlock()
			}
		}
	}()
	return ev
}

func (ev *events) has(sub string) bool {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, m := range ev.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// runImage starts a task on image and waits for it to exit 0.
func runImage(t *testing.T, h *testbed.Harness, raw rawTaskConfig) (*drivers.TaskConfig, *events) {
	t.Helper()
	raw.Command, raw.Args = "sh", []string{"-c", "echo ran"}
	task := newTask(t, raw)
	ev := collectEvents(t, h, task.ID)
	start(t, h, task)
	must.Eq(t, 0, wait(t, h, task.ID, 30*time.Second).ExitCode)
	return task, ev
}

// refused starts a task that must fail and leave no container.
func refused(t *testing.T, ib *imageBed, h *testbed.Harness, raw rawTaskConfig) error {
	t.Helper()
	task := newTask(t, raw)
	t.Cleanup(h.MkAllocDir(task, true))
	_, _, err := h.StartTask(task)
	must.Error(t, err)
	t.Log(err)
	must.False(t, ib.containerExists(t, containerID(task.Name, task.AllocID)))
	must.False(t, ib.snapshotExists(t, containerID(task.Name, task.AllocID)))
	return err
}

func TestDriverImages(t *testing.T) {
	ib := newImageBed(t)
	base := fmt.Sprintf("registry_config_dir = %q\n", ib.hostsDir)

	t.Run("task auth", func(t *testing.T) {
		h := ib.harness(t, base)
		_, ev := runImage(t, h, rawTaskConfig{Image: ib.ref("plain/busybox:1"),
			Auth: rawTaskAuth{Username: ib.reg.User, Password: ib.reg.Password}})
		eventually(t, "a progress event", func() bool { return ev.has("Pulling image " + ib.ref("plain/busybox:1")) })
		must.True(t, ev.has("Using image "+ib.ref("plain/busybox:1")+"@sha256:"))
	})
	t.Run("wrong password", func(t *testing.T) {
		h := ib.harness(t, base)
		err := refused(t, ib, h, rawTaskConfig{Image: ib.ref("plain/busybox:1"), ForcePull: true,
			Auth: rawTaskAuth{Username: ib.reg.User, Password: "not-the-pw-123"}})
		must.StrNotContains(t, err.Error(), "not-the-pw-123")
		must.False(t, structs.IsRecoverable(err), must.Sprint(err))
	})
	t.Run("plugin auth config", func(t *testing.T) {
		h := ib.harness(t, base+fmt.Sprintf("auth {\n config = %q\n}\n", ib.authConfig))
		runImage(t, h, rawTaskConfig{Image: ib.ref("plain/busybox:1"), ForcePull: true})
	})

	trustHCL := base + fmt.Sprintf(`auth {
  config = %q
}
trust {
  default_policy = "warn"
  rule {
    prefix      = %q
    public_keys = [%q]
    policy      = "enforce"
  }
}
`, ib.authConfig, ib.ref("signed/"), ib.trustKey)

	t.Run("enforce verifies", func(t *testing.T) {
		h := ib.harness(t, trustHCL)
		_, ev := runImage(t, h, rawTaskConfig{Image: ib.ref("signed/busybox:1")})
		eventually(t, "verified event", func() bool { return ev.has("Image signature verified") && ev.has(ib.trustKey) })
	})
	t.Run("enforce refuses unsigned", func(t *testing.T) {
		h := ib.harness(t, trustHCL)
		err := refused(t, ib, h, rawTaskConfig{Image: ib.ref("signed/unsigned:1")})
		must.StrContains(t, err.Error(), ib.ref("signed/unsigned"))
		must.StrContains(t, err.Error(), "sha256:")
		must.StrContains(t, err.Error(), ib.ref("signed/"))
		must.False(t, structs.IsRecoverable(err), must.Sprint(err))
	})
	t.Run("enforce refuses another key", func(t *testing.T) {
		h := ib.harness(t, trustHCL)
		err := refused(t, ib, h, rawTaskConfig{Image: ib.ref("signed/byother:1")})
		must.StrContains(t, err.Error(), ib.ref("signed/byother"))
	})
	t.Run("warn runs and says so", func(t *testing.T) {
		h := ib.harness(t, trustHCL)
		_, ev := runImage(t, h, rawTaskConfig{Image: ib.ref("plain/busybox:1")})
		eventually(t, "warning event", func() bool { return ev.has("Image signature not verified, running anyway") })
	})
	t.Run("load archive", func(t *testing.T) {
		h := ib.harness(t, base) // trust off: nothing is asked of a registry
		src := testbed.ImportBusybox(t, ib.cd, "docker.io/library/busybox:archive-src")
		task := newTask(t, rawTaskConfig{Image: "registry.example.invalid/loaded:1", Load: "local/busybox.tar", Command: "sh", Args: []string{"-c", "echo loaded"}})
		t.Cleanup(h.MkAllocDir(task, true))
		f, err := os.Create(filepath.Join(task.TaskDir().LocalDir, "busybox.tar"))
		must.NoError(t, err)
		must.NoError(t, ib.cd.Client.Export(ib.cd.Context(), f, archive.WithImage(ib.cd.Client.ImageService(), src.Name())))
		must.NoError(t, f.Close())
		_, _, err = h.StartTask(task)
		must.NoError(t, err)
		impl := h.Impl()
		t.Cleanup(func() { _ = impl.DestroyTask(task.ID, true) })
		must.Eq(t, 0, wait(t, h, task.ID, 30*time.Second).ExitCode)
		eventually(t, "output", func() bool { return strings.Contains(logs(t, task, "stdout"), "loaded") })

		// a symlink out of the allocation is refused
		evil := newTask(t, rawTaskConfig{Image: "registry.example.invalid/evil:1", Load: "local/evil.tar"})
		t.Cleanup(h.MkAllocDir(evil, true))
		must.NoError(t, os.Symlink(f.Name(), filepath.Join(evil.TaskDir().LocalDir, "evil.tar")))
		_, _, err = h.StartTask(evil)
		must.ErrorContains(t, err, "outside the allocation directory")
	})
	t.Run("gc", func(t *testing.T) {
		h := ib.harness(t, base+fmt.Sprintf("auth {\n config = %q\n}\ngc {\n image_delay = \"300ms\"\n}\n", ib.authConfig))
		imageExists := func(ref string) bool {
			_, err := ib.cd.Client.ImageService().Get(ib.cd.Context(), ref)
			return err == nil
		}
		// a running task keeps its image; a finished and destroyed one lets it go
		keep := newTask(t, rawTaskConfig{Image: ib.ref("signed/busybox:1"), Command: "sleep", Args: []string{"60"}})
		start(t, h, keep)
		task, _ := runImage(t, h, rawTaskConfig{Image: ib.ref("plain/busybox:1"), ForcePull: true})
		must.True(t, imageExists(ib.ref("plain/busybox:1")))
		must.NoError(t, h.DestroyTask(task.ID, true))
		eventually(t, "the unused image removed", func() bool { return !imageExists(ib.ref("plain/busybox:1")) })
		time.Sleep(time.Second) // several delays: the running task's image stays
		must.True(t, imageExists(ib.ref("signed/busybox:1")))
		// the next start pulls it again
		runImage(t, h, rawTaskConfig{Image: ib.ref("plain/busybox:1")})
		must.NoError(t, h.StopTask(keep.ID, time.Second, "SIGKILL"))
	})
	t.Run("trust_prefix only tightens", func(t *testing.T) {
		h := ib.harness(t, trustHCL)
		err := refused(t, ib, h, rawTaskConfig{Image: ib.ref("plain/busybox:1"), TrustPrefix: ib.ref("plain/")})
		must.StrContains(t, err.Error(), "trust_prefix")
		runImage(t, h, rawTaskConfig{Image: ib.ref("signed/busybox:1"), TrustPrefix: ib.ref("signed/")})
	})
}
