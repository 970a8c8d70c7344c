// Command containerd-stargz-grpc serves the stargz snapshotter (the service
// of github.com/containerd/stargz-snapshotter, pinned in go.mod) as a
// containerd proxy snapshotter on a unix socket, for the test bed. It is
// the upstream daemon's plain mode (no fuse manager, no IPFS, the in-memory
// metadata store): the upstream command lives in a module of its own that
// the Go module proxy does not serve.
//
// Registry credentials come from the docker config of the user running it
// ($DOCKER_CONFIG/config.json or ~/.docker/config.json); mirrors and
// registry settings from the [resolver] section of its config file.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/contrib/snapshotservice"
	"github.com/containerd/log"
	"github.com/containerd/stargz-snapshotter/service"
	"github.com/containerd/stargz-snapshotter/service/keychain/dockerconfig"
	"github.com/pelletier/go-toml"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
)

func main() {
	address := flag.String("address", "/run/containerd-stargz-grpc/containerd-stargz-grpc.sock", "address of the snapshotter's grpc server")
	configPath := flag.String("config", "", "path of the configuration file (toml)")
	rootDir := flag.String("root", "/var/lib/containerd-stargz-grpc", "root directory of the snapshotter")
	logLevel := flag.String("log-level", "info", "logging level")
	flag.Parse()
	if err := run(*address, *configPath, *rootDir, *logLevel); err != nil {
		fmt.Fprintf(os.Stderr, "containerd-stargz-grpc: %v\n", err)
		os.Exit(1)
	}
}

func run(address, configPath, rootDir, logLevel string) error {
	if err := log.SetLevel(logLevel); err != nil {
		return fmt.Errorf("failed to set the log level: %w", err)
	}
	ctx := log.WithLogger(context.Background(), log.L)
	var cfg service.Config
	if configPath != "" {
		tree, err := toml.LoadFile(configPath)
		if err != nil {
			return fmt.Errorf("failed to load config %s: %w", configPath, err)
		}
		if err := tree.Unmarshal(&cfg); err != nil {
			return fmt.Errorf("failed to decode config %s: %w", configPath, err)
		}
	}
	if err := service.Supported(rootDir); err != nil {
		return fmt.Errorf("snapshotter not supported: %w", err)
	}
	rs, err := service.NewStargzSnapshotterService(ctx, rootDir, &cfg,
		service.WithCredsFuncs(dockerconfig.NewDockerconfigKeychain(ctx)))
	if err != nil {
		return fmt.Errorf("failed to start the snapshotter: %w", err)
	}
	defer rs.Close()

	rpc := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(rpc, snapshotservice.FromSnapshotter(rs))
	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		return fmt.Errorf("failed to create the socket directory: %w", err)
	}
	if err := os.RemoveAll(address); err != nil {
		return fmt.Errorf("failed to remove an old socket: %w", err)
	}
	l, err := net.Listen("unix", address)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", address, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- rpc.Serve(l) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	select {
	case s := <-sigs:
		log.G(ctx).Infof("got %v, exiting", s)
		rpc.Stop()
		return nil
	case err := <-errc:
		return fmt.Errorf("failed to serve: %w", err)
	}
}
