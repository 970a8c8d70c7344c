package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

func TestSetTaskOption(t *testing.T) {
	cases := []struct {
		name, src, want, err string
	}{{
		name: "one task",
		src:  "job \"a\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"containerd\"\n      config {\n        image = var.image\n        args  = [\"x\"]\n      }\n    }\n  }\n}\n",
		want: "job \"a\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"containerd\"\n      config {\n        image = var.image\n        args  = [\"x\"]\n        userns_mode = \"auto\"\n      }\n    }\n  }\n}\n",
	}, {
		name: "only this plugin's tasks, in every group",
		src:  "job \"a\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        image = \"x\"\n      }\n    }\n    task \"u\" {\n      driver = \"containerd\"\n      config {\n        image = \"x\"\n      }\n    }\n  }\n  group \"h\" {\n    task \"v\" {\n      driver = \"containerd\"\n      config {}\n    }\n  }\n}\n",
		want: "job \"a\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        image = \"x\"\n      }\n    }\n    task \"u\" {\n      driver = \"containerd\"\n      config {\n        image = \"x\"\n        userns_mode = \"auto\"\n      }\n    }\n  }\n  group \"h\" {\n    task \"v\" {\n      driver = \"containerd\"\n      config {\n        userns_mode = \"auto\"\n      }\n    }\n  }\n}\n",
	}, {
		name: "set already to the same value",
		src:  "job \"a\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"containerd\"\n      config {\n        userns_mode = \"auto\"\n      }\n    }\n  }\n}\n",
		want: "job \"a\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"containerd\"\n      config {\n        userns_mode = \"auto\"\n      }\n    }\n  }\n}\n",
	}, {
		name: "set already to another value",
		src:  "job \"a\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"containerd\"\n      config {\n        userns_mode = \"host\"\n      }\n    }\n  }\n}\n",
		err:  `task "t" of job.hcl: userns_mode is "host" already, not "auto"`,
	}, {
		name: "no task of this plugin",
		src:  "job \"a\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config {}\n    }\n  }\n}\n",
		err:  `job.hcl has no task with driver = "containerd"`,
	}, {
		name: "a task without config",
		src:  "job \"a\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"containerd\"\n    }\n  }\n}\n",
		err:  `task "t" of job.hcl: 0 config blocks, want 1`,
	}, {
		name: "not HCL",
		src:  "job \"a\" {\n",
		err:  "failed to parse job.hcl",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := setTaskOption([]byte(c.src), "job.hcl", "userns_mode", "auto")
			if c.err != "" {
				must.ErrorContains(t, err, c.err)
				return
			}
			must.NoError(t, err)
			must.Eq(t, c.want, string(got))
		})
	}
}

// Each example job that e2e runs under userns_mode = "auto" differs from
// its file by that one line in each of its tasks' config blocks.
func TestSetTaskOptionExampleJobs(t *testing.T) {
	for _, job := range usernsJobFiles {
		t.Run(job, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("..", "example-jobs", job))
			must.NoError(t, err)
			got, err := setTaskOption(src, job, "userns_mode", "auto")
			must.NoError(t, err)
			added := strings.Count(string(src), `driver = "containerd"`)
			must.Positive(t, added)
			before, after := strings.Split(string(src), "\n"), strings.Split(string(got), "\n")
			must.SliceLen(t, len(before)+added, after)
			var kept []string
			for _, l := range after {
				if strings.TrimSpace(l) != `userns_mode = "auto"` {
					kept = append(kept, l)
				}
			}
			must.Eq(t, before, kept)
		})
	}
}
