package driver

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/image/trust"
	"github.com/nomad-containerd/nomad-driver-containerd/network"
	"github.com/nomad-containerd/nomad-driver-containerd/userns"
)

var driverCapabilities = &drivers.Capabilities{
	SendSignals: true,
	Exec:        true,
	FSIsolation: drivers.FSIsolationImage,
	NetIsolationModes: []drivers.NetIsolationMode{
		drivers.NetIsolationModeHost,
		drivers.NetIsolationModeGroup,
	},
	MountConfigs: drivers.MountConfigSupportAll,
	// the driver makes group network namespaces itself (groupnet.go),
	// unless create_group_network = false
	MustInitiateNetwork: true,
}

// PluginInfo describes the plugin to Nomad.
func (d *Driver) PluginInfo() (*base.PluginInfoResponse, error) {
	return &base.PluginInfoResponse{
		Type:              base.PluginTypeDriver,
		PluginApiVersions: []string{drivers.ApiVersion010},
		PluginVersion:     Version,
		Name:              pluginName,
	}, nil
}

// ConfigSchema is the plugin block's schema.
func (d *Driver) ConfigSchema() (*hclspec.Spec, error) { return configSpec, nil }

// TaskConfigSchema is the task config block's schema.
func (d *Driver) TaskConfigSchema() (*hclspec.Spec, error) { return taskConfigSpec, nil }

// Capabilities tells Nomad what the driver supports.
// With logging.collector = "driver" Nomad starts no logmon: the driver
// writes alloc/logs itself. With create_group_network = false Nomad (or
// another driver of the group) makes group network namespaces.
func (d *Driver) Capabilities() (*drivers.Capabilities, error) {
	st, err := d.current()
	if err != nil {
		return driverCapabilities, nil
	}
	caps := *driverCapabilities
	caps.DisableLogCollection = st.config.Logging.Driver
	caps.MustInitiateNetwork = st.config.CreateGroupNetwork
	return &caps, nil
}

// SetConfig validates the plugin config and connects to containerd. The
// connection is lazy: containerd being down is a fingerprint state, not a
// config error.
func (d *Driver) SetConfig(cfg *base.Config) error {
	conf, err := DecodeConfig(cfg.PluginConfig)
	if err != nil {
		return err
	}
	c, err := d.clients.get(conf.Address, conf.Namespace, func() (*client.Client, error) {
		return client.New(conf.Address, client.WithDefaultNamespace(conf.Namespace), client.WithTimeout(callTimeout))
	})
	if err != nil {
		return fmt.Errorf("failed to create containerd client for %q: %w", conf.Address, err)
	}
	images := image.NewManager(c, conf.Namespace, image.Config{
		Snapshotter:     conf.Snapshotter,
		HostsDir:        conf.RegistryConfigDir,
		PullTimeout:     conf.ImagePullTimeout,
		ActivityTimeout: conf.Images.ActivityTimeout,
		AuthConfig:      conf.Images.AuthConfig,
		AuthHelper:      conf.Images.AuthHelper,
	}, d.logger)
	verifier := trust.NewVerifier(conf.Images.Trust, func(host string) docker.RegistryHosts {
		return images.Hosts(d.ctx, host)
	}, d.logger).WithMemory(d.verified)
	networks, err := network.New(conf.CNI, d.logger)
	if err != nil {
		return fmt.Errorf("invalid plugin config: %w", err)
	}

	st := &state{
		config:   conf,
		client:   c,
		images:   images,
		runtime:  executor.New(c, conf.Namespace, d.logger),
		networks: networks,
		verifier: verifier,
		gc:       image.NewGC(c, conf.Namespace, gcConfig(conf), d.logger),
		cdi:      newCDIRegistry(conf.CDI),
	}
	if cfg.AgentConfig != nil {
		st.nomadConfig = cfg.AgentConfig.Driver
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	var oldIDs *userns.Pool
	if d.st != nil {
		oldIDs = d.st.ids
	}
	if st.ids, err = newIDPool(conf.UserNS.RangeStart, conf.UserNS.RangeCount, oldIDs, d.logger); err != nil {
		return err
	}
	if d.st != nil {
		if st.nomadConfig == nil {
			st.nomadConfig = d.st.nomadConfig
		}
		d.st.close()
	}
	// removals that were pending when the plugin stopped are armed again
	go func() {
		ctx, cancel := context.WithTimeout(d.ctx, callTimeout)
		defer cancel()
		if err := st.gc.Rescan(ctx); err != nil {
			d.logger.Warn("failed to rescan images for gc", "error", err)
		}
	}()
	initCompute(d.logger)
	if conf.Containers.Enabled {
		st.stopReconciler = d.startReconciler(st).stop
	}
	d.st = st
	return nil
}

// gcConfig is the image GC's config: the gc block and the snapshotter
// whose filesystem disk pressure measures.
func gcConfig(conf *Config) image.GCConfig {
	gc := conf.Images.GC
	gc.Snapshotter = conf.Snapshotter
	return gc
}

// TaskEvents streams the driver's task events to Nomad.
func (d *Driver) TaskEvents(ctx context.Context) (<-chan *drivers.TaskEvent, error) {
	return d.eventer.TaskEvents(ctx)
}

// Shutdown releases the containerd connection; running tasks are untouched.
func (d *Driver) Shutdown() {
	d.cancel()
	d.logs.close()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st != nil {
		d.st.close()
	}
	d.clients.closeAll()
}
