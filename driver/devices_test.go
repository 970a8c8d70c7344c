package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
)

func TestReservedDevices(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must.NoError(t, os.WriteFile(file, nil, 0o644))
	link := filepath.Join(dir, "gpu0")
	must.NoError(t, os.Symlink("/dev/null", link))

	cases := []struct {
		name    string
		devices []*drivers.DeviceConfig
		want    []executor.Device
		err     string
	}{
		{name: "none"},
		{name: "docker driver's mapping",
			devices: []*drivers.DeviceConfig{{HostPath: "/dev/null", TaskPath: "/dev/fake0", Permissions: "rw"}},
			want:    []executor.Device{{HostPath: "/dev/null", ContainerPath: "/dev/fake0", Permissions: "rw"}}},
		{name: "task path and permissions default",
			devices: []*drivers.DeviceConfig{{HostPath: "/dev/zero"}},
			want:    []executor.Device{{HostPath: "/dev/zero", ContainerPath: "/dev/zero", Permissions: "rwm"}}},
		{name: "symlink resolved, several in order",
			devices: []*drivers.DeviceConfig{{HostPath: link, TaskPath: "/dev/gpu0", Permissions: "r"}, nil, {HostPath: "/dev/zero", TaskPath: "/dev/z", Permissions: "mrw"}},
			want:    []executor.Device{{HostPath: "/dev/null", ContainerPath: "/dev/gpu0", Permissions: "r"}, {HostPath: "/dev/zero", ContainerPath: "/dev/z", Permissions: "mrw"}}},
		{name: "relative host path",
			devices: []*drivers.DeviceConfig{{HostPath: "dev/null", TaskPath: "/dev/x"}},
			err:     `device reservation 0: host path "dev/null" and task path "/dev/x" must be absolute paths`},
		{name: "relative task path",
			devices: []*drivers.DeviceConfig{{HostPath: "/dev/null", TaskPath: "dev/x"}},
			err:     `device reservation 0: host path "/dev/null" and task path "dev/x" must be absolute paths`},
		{name: "task path under proc",
			devices: []*drivers.DeviceConfig{{HostPath: "/dev/null", TaskPath: "/proc/kcore"}},
			err:     `device reservation 0: mount destination "/proc/kcore" is refused`},
		{name: "bad permissions",
			devices: []*drivers.DeviceConfig{{HostPath: "/dev/null", TaskPath: "/dev/x", Permissions: "rwx"}},
			err:     `device reservation 0: permissions "rwx" must be letters of "rwm"`},
		{name: "missing node",
			devices: []*drivers.DeviceConfig{{HostPath: "/dev/null"}, {HostPath: filepath.Join(dir, "gone"), TaskPath: "/dev/x"}},
			err:     `device reservation 1: host device "` + filepath.Join(dir, "gone") + `" cannot be resolved`},
		{name: "not a device",
			devices: []*drivers.DeviceConfig{{HostPath: file, TaskPath: "/dev/x"}},
			err:     `device reservation 0: "` + file + `" (resolved to "` + file + `") is not a device node`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := reservedDevices(&drivers.TaskConfig{Devices: tc.devices})
			if tc.err != "" {
				must.ErrorContains(t, err, tc.err)
				return
			}
			must.NoError(t, err)
			must.Eq(t, tc.want, got)
		})
	}
}
