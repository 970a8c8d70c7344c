package driver

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers/proto"
	"github.com/shoenig/test/must"
	"google.golang.org/grpc"

	tasklogs "github.com/nomad-containerd/nomad-driver-containerd/logs"
)

func TestParseLoggingConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hcl     string
		want    LoggingConfig
		wantErr string
	}{
		{"absent: the driver's collector", ``, LoggingConfig{Driver: true, Limits: tasklogs.Limits{MaxFiles: 10, MaxFileSize: 10 << 20}}, ""},
		{"driver with defaults", "logging {\n collector = \"driver\"\n}", LoggingConfig{Driver: true, Limits: tasklogs.Limits{MaxFiles: 10, MaxFileSize: 10 << 20}}, ""},
		{"driver with limits", "logging {\n collector = \"driver\"\n max_files = 3\n max_file_size = 2\n}", LoggingConfig{Driver: true, Limits: tasklogs.Limits{MaxFiles: 3, MaxFileSize: 2 << 20}}, ""},
		{"nomad", "logging {\n collector = \"nomad\"\n}", LoggingConfig{Limits: tasklogs.Limits{MaxFiles: 10, MaxFileSize: 10 << 20}}, ""},
		{"unknown collector", "logging {\n collector = \"fluentd\"\n}", LoggingConfig{}, `logging.collector: "fluentd" is not a log collector: use "nomad" (Nomad's logmon) or "driver"`},
		{"no files", "logging {\n collector = \"driver\"\n max_files = 0\n}", LoggingConfig{}, "logging.max_files: 0 must be at least 1"},
		{"limits only: the driver's collector", "logging {\n max_files = 4\n}", LoggingConfig{Driver: true, Limits: tasklogs.Limits{MaxFiles: 4, MaxFileSize: 10 << 20}}, ""},
		{"no size", "logging {\n max_file_size = -1\n}", LoggingConfig{}, "logging.max_file_size: -1 must be at least 1 (MB)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(decodePluginHCL(t, tc.hcl))
			if tc.wantErr != "" {
				must.ErrorContains(t, err, tc.wantErr)
				return
			}
			must.NoError(t, err)
			must.Eq(t, tc.want, c.Logging)
		})
	}
}

// TestCapabilitiesReachTheAgent checks that the answer the agent gets
// carries DisableLogCollection, which the SDK's server leaves out.
func TestCapabilitiesReachTheAgent(t *testing.T) {
	for _, driverLogs := range []bool{false, true} {
		d := New(hclog.NewNullLogger())
		c, err := parseConfig(decodePluginHCL(t, ""))
		must.NoError(t, err)
		c.Logging.Driver = driverLogs
		d.st = &state{config: c}
		sdk := func(context.Context, any) (any, error) {
			return &proto.CapabilitiesResponse{Capabilities: &proto.DriverCapabilities{SendSignals: true}}, nil
		}
		resp, err := d.capabilitiesInterceptor(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/hashicorp.nomad.plugins.drivers.proto.Driver/Capabilities"}, sdk)
		must.NoError(t, err)
		caps := resp.(*proto.CapabilitiesResponse).Capabilities
		must.Eq(t, driverLogs, caps.DisableLogCollection)
		must.True(t, caps.SendSignals, must.Sprint("the SDK's answer is kept"))
	}
}
