package driver

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gocni "github.com/containerd/go-cni"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
	"github.com/nomad-containerd/nomad-driver-containerd/userns"
)

// -update writes the fixtures of the current state version (never those of
// older versions: they are what earlier plugins wrote, kept as they are).
var updateFixtures = flag.Bool("update", false, "write testdata/taskstate-v<current>-*.msgpack")

// stateFixtures are the committed task states, each encoded by Nomad's own
// TaskHandle.SetDriverState, with what the current code must make of them.
// When the format changes, the older fixtures stay and their want becomes
// the upgraded state.
var stateFixtures = []struct {
	file string
	want TaskState
}{
	{"taskstate-v1-bridge.msgpack", TaskState{
		Version:     2, // upgraded: a version 1 task runs in the host's user namespace
		ContainerID: "web-6f1b0c1e-2a4d-4f8e-9b3a-1c2d3e4f5a6b",
		Namespace:   "nomad",
		ImageRef:    "registry.example.com/team/web:1.4",
		ImageDigest: "sha256:4b5a3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b",
		StartedAt:   time.Date(2025, 11, 3, 9, 41, 27, 123456789, time.UTC),
		PID:         48213,
		Network: &network.Attachment{
			ID:        "web-6f1b0c1e-2a4d-4f8e-9b3a-1c2d3e4f5a6b",
			Network:   "bridge",
			NetNSPath: "/var/run/netns/nomad-web-6f1b0c1e-2a4d-4f8e-9b3a-1c2d3e4f5a6b",
			IfName:    "eth0",
			Ports: []gocni.PortMapping{
				{HostPort: 24561, ContainerPort: 8080, Protocol: "tcp"},
				{HostPort: 24561, ContainerPort: 8080, Protocol: "udp"},
				{HostPort: 28080, ContainerPort: 9090, Protocol: "tcp", HostIP: "127.0.0.1"},
			},
			IP:       "172.31.0.7",
			Gateway:  "172.31.0.1",
			ConfName: "nomadctr0",
		},
		PortMap: map[string]int{"http": 8080, "admin": 9090},
	}},
	{"taskstate-v1-host.msgpack", TaskState{
		Version:     2,
		ContainerID: "batch-0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d",
		Namespace:   "nomad",
		ImageRef:    "docker.io/library/busybox:1.36",
		ImageDigest: "sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7",
		StartedAt:   time.Date(2025, 6, 30, 23, 59, 59, 0, time.UTC),
		PID:         7,
	}},
	{"taskstate-v1-pullonly.msgpack", TaskState{
		Version:     2,
		ContainerID: "warm-1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6",
		Namespace:   "nomad",
		ImageRef:    "registry.example.com/team/web:1.5",
		ImageDigest: "sha256:0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
		StartedAt:   time.Date(2026, 1, 12, 4, 0, 0, 0, time.UTC),
		PullOnly:    true,
	}},
	{"taskstate-v2-userns.msgpack", TaskState{
		Version:     2,
		ContainerID: "api-3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
		Namespace:   "nomad",
		ImageRef:    "registry.example.com/team/api:2.0",
		ImageDigest: "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
		StartedAt:   time.Date(2026, 12, 7, 2, 15, 0, 0, time.UTC),
		PID:         51234,
		PortMap:     map[string]int{"http": 80},
		UserNS:      &userns.Range{Start: 2147549184, Size: 65536},
	}},
}

// newerFixture is a state of a version this plugin does not know: the
// version moved on and a field changed its type.
const newerFixture = "taskstate-v99-newer.msgpack"

var newerState = map[string]any{"Version": 99, "ContainerID": "web-1", "Network": []string{"a", "b"}}

func fixturePath(name string) string { return filepath.Join("testdata", name) }

// encodeState is what StartTask hands Nomad: the state in a TaskHandle.
func encodeState(t *testing.T, v any) []byte {
	t.Helper()
	h := drivers.NewTaskHandle(taskHandleVersion)
	must.NoError(t, h.SetDriverState(v))
	return h.DriverState
}

func handleWith(state []byte) *drivers.TaskHandle {
	h := drivers.NewTaskHandle(taskHandleVersion)
	h.Config = &drivers.TaskConfig{ID: "alloc/web/1234abcd", Name: "web"}
	h.DriverState = state
	return h
}

func TestTaskStateFixturesDecode(t *testing.T) {
	if *updateFixtures {
		for _, f := range stateFixtures {
			if strings.HasPrefix(f.file, fmt.Sprintf("taskstate-v%d-", taskStateVersion)) {
				must.NoError(t, os.WriteFile(fixturePath(f.file), encodeState(t, &f.want), 0o644))
			}
		}
		must.NoError(t, os.WriteFile(fixturePath(newerFixture), encodeState(t, newerState), 0o644))
	}
	versions := map[int]bool{}
	for _, f := range stateFixtures {
		t.Run(f.file, func(t *testing.T) {
			raw, err := os.ReadFile(fixturePath(f.file))
			must.NoError(t, err)
			got, err := decodeState(handleWith(raw))
			must.NoError(t, err)
			must.Eq(t, f.want, got)
		})
		var v int
		_, err := fmt.Sscanf(strings.TrimPrefix(f.file, "taskstate-v"), "%d", &v)
		must.NoError(t, err, must.Sprintf("fixture name %q", f.file))
		versions[v] = true
	}
	for v := 1; v <= taskStateVersion; v++ {
		must.True(t, versions[v], must.Sprintf("no committed fixture of task state version %d", v))
	}
	// every committed fixture is checked
	files, err := filepath.Glob(fixturePath("taskstate-v*.msgpack"))
	must.NoError(t, err)
	checked := []string{fixturePath(newerFixture)}
	for _, f := range stateFixtures {
		checked = append(checked, fixturePath(f.file))
	}
	must.SliceContainsAll(t, checked, files)
}

// A state written by a newer plugin is refused before anything is touched,
// with an error that names both versions.
func TestTaskStateNewerVersionRefused(t *testing.T) {
	raw, err := os.ReadFile(fixturePath(newerFixture))
	must.NoError(t, err)
	_, err = decodeState(handleWith(raw))
	must.ErrorContains(t, err, "task state version 99 was written by a newer plugin: this one reads versions 1 to 2")

	// RecoverTask fails on it before it needs containerd, and the dangling
	// container reconciler keeps off the task's container
	d := New(hclog.NewNullLogger())
	h := handleWith(raw)
	h.Config.AllocID = "a1"
	err = d.RecoverTask(h)
	must.ErrorContains(t, err, "failed to recover task alloc/web/1234abcd: task state version 99")
	must.False(t, d.tasks.ClaimDangling("web-a1"))
}

func TestTaskStateRefusals(t *testing.T) {
	cases := map[string]struct {
		state any
		want  string
	}{
		"no version":      {map[string]any{"ContainerID": "web-1"}, "task state version 0 is not supported: versions 1 to 2 are"},
		"no container ID": {TaskState{Version: 1}, "task state has no container ID"},
		"not a state":     {[]string{"web-1"}, "failed to decode task state"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := decodeState(handleWith(encodeState(t, tc.state)))
			must.ErrorContains(t, err, tc.want)
		})
	}
}
