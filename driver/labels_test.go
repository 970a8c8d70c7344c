package driver

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
)

const testAllocID = "8f1e2c3a-5b6d-4e7f-8a9b-0c1d2e3f4a5b"

func TestContainerID(t *testing.T) {
	cases := []struct {
		task string
		want string // "" = check shape only
	}{
		{task: "web", want: "web-" + testAllocID},
		{task: "api.v2_x", want: "api.v2_x-" + testAllocID},
		{task: "my task"},
		{task: "--web"},
		{task: "a..b"},
		{task: strings.Repeat("long", 20)},
		{task: "ünïcode"},
	}
	seen := map[string]string{}
	for _, c := range cases {
		id := containerID(c.task, testAllocID)
		if c.want != "" {
			must.Eq(t, c.want, id)
		}
		must.True(t, validIDPart(id), must.Sprintf("id %q is not a valid containerd id", id))
		must.LessEq(t, maxContainerID, len(id))
		must.StrHasSuffix(t, "-"+testAllocID, id)
		if other, dup := seen[id]; dup {
			t.Fatalf("tasks %q and %q map to the same id %q", other, c.task, id)
		}
		seen[id] = c.task
	}
}

func TestContainerLabels(t *testing.T) {
	cfg := &drivers.TaskConfig{AllocID: testAllocID, JobID: "web", JobName: "web", TaskGroupName: "g", Name: "t", Namespace: "prod"}
	l := containerLabels(cfg, "t-"+testAllocID, map[string]string{"team": "a"})
	must.Eq(t, map[string]string{
		"team":             "a",
		"nomad.driver":     "containerd",
		"nomad.alloc_id":   testAllocID,
		"nomad.job_id":     "web",
		"nomad.job_name":   "web",
		"nomad.task_group": "g",
		"nomad.task_name":  "t",
		"nomad.namespace":  "prod",
		"nerdctl/name":     "t-" + testAllocID,
	}, l)
}
