//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

// logAttackJob is a batch job whose task tries, through one bind form, to
// reach alloc/logs writable, plant symlinks to a host file where the log
// collector will open its next log files, and force those rotations with 3 MiB
// of output (files of 1 MiB).
const logAttackJob = `
job %q {
  type = "batch"
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "web" {
      driver = "containerd"
      config {
        image   = %q
        command = "sh"
        args    = ["-c", "for i in 1 2 3; do ln -s %s /x/web.stdout.$i && echo planted-$i >&2; done; head -c 3145728 /dev/zero | tr '\\0' a; sleep 1"]
        %s
      }
      logs {
        max_files     = 3
        max_file_size = 1
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
`

// testLogSymlinkAttack tries every bind form of alloc/logs on a real agent:
// a writable bind is refused before the task runs, the read-only one runs
// and cannot plant anything, and the host canary the collector would have written
// through a planted symlink stays as it was.
func testLogSymlinkAttack(t *testing.T, e *env) {
	canary := filepath.Join(t.TempDir(), "canary")
	const original = "host file, not to be written by a task\n"
	must.NoError(t, os.WriteFile(canary, []byte(original), 0o644))
	forms := []struct {
		name, config, status string
	}{
		{"volumes", `volumes = ["../alloc/logs:/x"]`, "failed"},
		{"mount", "mount {\n type = \"bind\"\n source = \"../alloc/logs\"\n target = \"/x\"\n }", "failed"},
		{"mounts", "mounts {\n type = \"bind\"\n source = \"../alloc/logs\"\n target = \"/x\"\n options = [\"rbind\", \"rw\"]\n }", "failed"},
		{"bind", `bind = { "../alloc/logs" = "/x" }`, "failed"},
		{"bind_read_only", `bind_read_only = { "../alloc/logs" = "/x" }`, "complete"},
	}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			job := "log-attack-" + strings.ReplaceAll(f.name, "_", "-")
			file := filepath.Join(t.TempDir(), job+".nomad.hcl")
			must.NoError(t, os.WriteFile(file, []byte(fmt.Sprintf(logAttackJob, job, e.image, canary, f.config)), 0o644))
			e.cli(t, "job", "run", "-detach", file)
			t.Cleanup(func() { e.purge(t, job) })
			a := e.alloc(t, job, f.status)
			status := e.cli(t, "alloc", "status", a.ID)
			if f.status == "failed" {
				must.StrContains(t, status, "is refused", must.Sprint("the start was refused for the bind"))
			} else {
				must.StrNotContains(t, e.cli(t, "alloc", "logs", "-stderr", a.ID, "web"), "planted")
			}
			logs := filepath.Join(e.nomad.Config.DataDir, "alloc", a.ID, "alloc", "logs")
			entries, err := os.ReadDir(logs)
			must.NoError(t, err)
			for _, en := range entries {
				must.False(t, en.Type()&os.ModeSymlink != 0, must.Sprintf("symlink %s planted in alloc/logs", en.Name()))
			}
			got, err := os.ReadFile(canary)
			must.NoError(t, err)
			must.Eq(t, original, string(got))
			e.stopJob(t, job)
		})
	}
}
