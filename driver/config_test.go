package driver

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/drivers/shared/capabilities"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
)

func TestParseConfig_Defaults(t *testing.T) {
	c := configCase(t, "", "")
	must.Eq(t, "/run/containerd/containerd.sock", c.Address)
	must.Eq(t, "nomad", c.Namespace)
	must.Eq(t, "io.containerd.runc.v2", c.Runtime)
	must.Eq(t, []string{"io.containerd.runc.v2"}, c.AllowRuntimes)
	must.Eq(t, "overlayfs", c.Snapshotter)
	must.Eq(t, 5*time.Minute, c.ImagePullTimeout)
	must.Eq(t, time.Second, c.StatsInterval)
	must.False(t, c.AllowPrivileged)
	must.False(t, c.VolumesEnabled)
	must.False(t, c.AllowHostPID)
	must.False(t, c.AllowHostIPC)
	must.Eq(t, "private", c.DefaultPIDMode)
	must.Eq(t, "private", c.DefaultIPCMode)
	must.Eq(t, "bridge", c.DefaultNetworkMode.String())
	must.True(t, c.CreateGroupNetwork)
	must.Eq(t, "nomadctr0", c.CNI.BridgeName)
	must.Eq(t, "172.31.0.0/16", c.CNI.Subnet)
	must.Eq(t, []string{"/opt/cni/bin"}, c.CNI.BinDirs)
	must.Eq(t, capabilities.NomadDefaults().Slice(false), capabilities.New(c.AllowCaps).Slice(false))
	must.SliceNotContains(t, c.AllowCaps, "net_raw")
}

func TestParseConfig_Fields(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		check func(*testing.T, *Config)
		err   string // substring of the expected error; "" = valid
	}{
		{name: "address", body: `address = "/tmp/c.sock"`, check: func(t *testing.T, c *Config) { must.Eq(t, "/tmp/c.sock", c.Address) }},
		{name: "empty address", body: `address = ""`, err: "address: must be the path"},
		{name: "namespace", body: `namespace = "team-a"`, check: func(t *testing.T, c *Config) { must.Eq(t, "team-a", c.Namespace) }},
		{name: "bad namespace", body: `namespace = "a/b"`, err: `namespace: "a/b" may only hold`},
		{name: "runtime outside allow list", body: `runtime = "io.containerd.kata.v2"`, err: `runtime: "io.containerd.kata.v2" is not in allow_runtimes`},
		{name: "runtime allowed", body: "runtime = \"io.containerd.kata.v2\"\nallow_runtimes = [\"io.containerd.kata.v2\"]",
			check: func(t *testing.T, c *Config) { must.Eq(t, "io.containerd.kata.v2", c.Runtime) }},
		{name: "snapshotter native", body: `snapshotter = "native"`, check: func(t *testing.T, c *Config) { must.Eq(t, "native", c.Snapshotter) }},
		{name: "bad snapshotter", body: `snapshotter = "aufs"`, err: `snapshotter: "aufs" is not one of`},
		{name: "disk watermarks", body: "gc {\n disk_high = \"90%\"\n disk_low = 75\n disk_check_interval = \"30s\"\n disk_paths = [\"/var/lib/containerd\"]\n}",
			check: func(t *testing.T, c *Config) {
				must.Eq(t, image.DiskPressure{High: 90, Low: 75, Interval: 30 * time.Second, Paths: []string{"/var/lib/containerd"}}, c.Images.GC.Disk)
			}},
		{name: "no disk watermarks", body: "", check: func(t *testing.T, c *Config) { must.Eq(t, 0.0, c.Images.GC.Disk.High) }},
		{name: "disk_low above disk_high", body: "gc {\n disk_high = \"80%\"\n disk_low = \"85%\"\n}", err: `gc.disk_low: "85%" must be below gc.disk_high "80%"`},
		{name: "disk_high alone", body: "gc {\n disk_high = \"80%\"\n}", err: `gc.disk_high and gc.disk_low: set both or neither`},
		{name: "disk_high not a percentage", body: "gc {\n disk_high = \"lots\"\n disk_low = \"80%\"\n}", err: `gc.disk_high: "lots" is not a percentage`},
		{name: "disk watermarks without image gc", body: "gc {\n image = false\n disk_high = 90\n disk_low = 80\n}", err: `gc.disk_high: "90" needs gc.image = true`},
		{name: "bad disk_check_interval", body: "gc {\n disk_high = 90\n disk_low = 80\n disk_check_interval = \"0s\"\n}", err: `gc.disk_check_interval: "0s" must be greater than zero`},
		{name: "relative disk_paths", body: "gc {\n disk_paths = [\"containerd\"]\n}", err: `gc.disk_paths: "containerd" must be an absolute path`},
		{name: "registry dir relative", body: `registry_config_dir = "certs.d"`, err: `registry_config_dir: "certs.d" must be an absolute path`},
		{name: "registry dir", body: `registry_config_dir = "/etc/containerd/certs.d"`,
			check: func(t *testing.T, c *Config) { must.Eq(t, "/etc/containerd/certs.d", c.RegistryConfigDir) }},
		{name: "pull timeout", body: `image_pull_timeout = "90s"`, check: func(t *testing.T, c *Config) { must.Eq(t, 90*time.Second, c.ImagePullTimeout) }},
		{name: "bad pull timeout", body: `image_pull_timeout = "soon"`, err: `image_pull_timeout: "soon" is not a duration`},
		{name: "zero pull timeout", body: `image_pull_timeout = "0s"`, err: `image_pull_timeout: "0s" must be greater than zero`},
		{name: "bad stats interval", body: `stats_interval = "-1s"`, err: `stats_interval: "-1s" must be greater than zero`},
		{name: "default network mode", body: `default_network_mode = "cni/team"`,
			check: func(t *testing.T, c *Config) { must.Eq(t, "cni/team", c.DefaultNetworkMode.String()) }},
		{name: "bad default network mode", body: `default_network_mode = "overlay"`, err: `default_network_mode: "overlay" is not`},
		{name: "group networks left to Nomad", body: `create_group_network = false`,
			check: func(t *testing.T, c *Config) { must.False(t, c.CreateGroupNetwork) }},
		{name: "cni block", body: "cni {\n bin_dir = \"/a:/b\"\n conf_dir = \"/c\"\n bridge_name = \"br9\"\n subnet = \"10.9.0.0/24\"\n}",
			check: func(t *testing.T, c *Config) {
				must.Eq(t, []string{"/a", "/b"}, c.CNI.BinDirs)
				must.Eq(t, "/c", c.CNI.ConfDir)
				must.Eq(t, "br9", c.CNI.BridgeName)
				must.Eq(t, "10.9.0.0/24", c.CNI.Subnet)
				must.Eq(t, "/var/run/netns", c.CNI.NetNSDir)
			}},
		{name: "bad cni subnet", body: "cni {\n subnet = \"10.9.0.0\"\n}", err: "cni.subnet"},
		{name: "bad cni bridge", body: "cni {\n bridge_name = \"a-very-long-bridge-name\"\n}", err: "cni.bridge_name"},
		{name: "relative cni conf dir", body: "cni {\n conf_dir = \"net.d\"\n}", err: "cni.conf_dir"},
		{name: "privileged", body: `allow_privileged = true`, check: func(t *testing.T, c *Config) { must.True(t, c.AllowPrivileged) }},
		{name: "allow caps", body: `allow_caps = ["chown", "net_raw"]`, check: func(t *testing.T, c *Config) { must.Eq(t, []string{"chown", "net_raw"}, c.AllowCaps) }},
		{name: "bad cap", body: `allow_caps = ["chown", "fly"]`, err: "allow_caps: fly not supported"},
		{name: "volumes", body: "volumes {\n enabled = true\n allowed_host_paths = [\"/srv\"]\n}",
			check: func(t *testing.T, c *Config) {
				must.True(t, c.VolumesEnabled)
				must.Eq(t, []string{"/srv"}, c.AllowedHostPaths)
			}},
		{name: "relative allowed path", body: "volumes {\n enabled = true\n allowed_host_paths = [\"srv\"]\n}", err: `volumes.allowed_host_paths: "srv" must be an absolute path`},
		{name: "bad pid mode", body: `default_pid_mode = "shared"`, err: `default_pid_mode: "shared" is not "private" or "host"`},
		{name: "host pid without gate", body: `default_pid_mode = "host"`, err: `default_pid_mode: "host" needs allow_host_pid = true`},
		{name: "host ipc without gate", body: `default_ipc_mode = "host"`, err: `default_ipc_mode: "host" needs allow_host_ipc = true`},
		{name: "host pid with gate", body: "default_pid_mode = \"host\"\nallow_host_pid = true",
			check: func(t *testing.T, c *Config) { must.Eq(t, "host", c.DefaultPIDMode) }},
		{name: "no pivot root", body: `no_pivot_root = true`, check: func(t *testing.T, c *Config) { must.True(t, c.NoPivotRoot) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c := configCase(t, tc.body, tc.err); c != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestParseConfig_ErrorsNameFieldAndValue(t *testing.T) {
	_, err := parseConfig(decodePluginHCL(t, `stats_interval = "fast"`))
	must.Error(t, err)
	must.True(t, strings.HasPrefix(err.Error(), "stats_interval: "))
	must.StrContains(t, err.Error(), `"fast"`)
}
