package driver

import (
	"context"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/drivers/proto"
	"google.golang.org/grpc"
)

// Serve serves the driver to the Nomad agent as drivers.Serve does, and
// carries Capabilities().DisableLogCollection to the agent: the 1.6.1
// SDK's server leaves that field out of the Capabilities answer (only
// in-process drivers could set it), while the agent reads it.
//
// The plugin outlives an agent that dies: its log lines go to the dead
// agent's pipe, and a write there must not end it (SIGPIPE) after the
// restarted agent has reattached to it, or the agent's calls to that
// instance fail (CreateNetwork of a running group's namespace among them).
// What it logs until Nomad starts it anew is lost.
func Serve(d *Driver, logger hclog.Logger) {
	signal.Ignore(syscall.SIGPIPE)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: base.Handshake,
		Plugins: map[string]plugin.Plugin{
			base.PluginTypeBase:   &base.PluginBase{Impl: d},
			base.PluginTypeDriver: drivers.NewDriverPlugin(d, logger),
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return plugin.DefaultGRPCServer(append(opts, grpc.ChainUnaryInterceptor(d.capabilitiesInterceptor)))
		},
		Logger: logger,
	})
}

// capabilitiesInterceptor adds DisableLogCollection to the SDK's
// Capabilities answer.
func (d *Driver) capabilitiesInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil || !strings.HasSuffix(info.FullMethod, "/Capabilities") {
		return resp, err
	}
	if r, ok := resp.(*proto.CapabilitiesResponse); ok && r.Capabilities != nil {
		caps, cerr := d.Capabilities()
		if cerr == nil {
			r.Capabilities.DisableLogCollection = caps.DisableLogCollection
		}
	}
	return resp, nil
}
