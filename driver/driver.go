package driver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/drivers/shared/eventer"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/image/trust"
	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

const (
	pluginName = "containerd"
	// taskHandleVersion is the version of the TaskHandle envelope Nomad stores.
	taskHandleVersion = 1
	// callTimeout bounds every containerd call that is not a pull or a wait.
	callTimeout = 30 * time.Second
	// networkTimeout bounds a CNI ADD or DEL.
	networkTimeout = time.Minute
)

// Version is the plugin's version, set at build time with -ldflags.
var Version = "0.1.0-dev"

var driverCapabilities = &drivers.Capabilities{
	SendSignals: true,
	Exec:        true,
	FSIsolation: drivers.FSIsolationImage,
	NetIsolationModes: []drivers.NetIsolationMode{
		drivers.NetIsolationModeHost,
		drivers.NetIsolationModeGroup,
	},
	MountConfigs: drivers.MountConfigSupportAll,
}

// Driver runs Nomad tasks as containerd containers.
type Driver struct {
	eventer *eventer.Eventer
	ctx     context.Context
	cancel  context.CancelFunc
	logger  hclog.Logger
	tasks   *taskStore
	// recovery bounds how long recoveries wait for containerd together.
	recovery recoveryWindow
	// runcWarning is the last runc warning of the fingerprint (a string),
	// so that it is logged once, not every period.
	runcWarning atomic.Value
	// namespaces are the other containerd namespaces the plugin has tasks in.
	namespaces usedNamespaces
	// afterImage, when set, runs in every start between getting the image
	// and making the network and container; tests hold a start there.
	afterImage func(*drivers.TaskConfig)
	// afterVerify, when set, runs in a verified start after the image was
	// pulled and its signature verified and before image.Ensure checks what
	// the image store holds under the name (Request.AfterVerify); tests
	// write the name there.
	afterVerify func(*drivers.TaskConfig)

	mu sync.RWMutex // guards st
	// st is what the last SetConfig established; nil before the first.
	st *state
}

// New returns the plugin; main passes it to plugins.Serve.
func New(logger hclog.Logger) *Driver {
	ctx, cancel := context.WithCancel(context.Background())
	logger = logger.Named(pluginName)
	return &Driver{
		eventer: eventer.NewEventer(ctx, logger),
		ctx:     ctx,
		cancel:  cancel,
		logger:  logger,
		tasks:   newTaskStore(),
	}
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
func (d *Driver) Capabilities() (*drivers.Capabilities, error) { return driverCapabilities, nil }

// SetConfig validates the plugin config and connects to containerd. The
// connection is lazy: containerd being down is a fingerprint state, not a
// config error.
func (d *Driver) SetConfig(cfg *base.Config) error {
	var raw rawConfig
	if len(cfg.PluginConfig) != 0 {
		if err := base.MsgPackDecode(cfg.PluginConfig, &raw); err != nil {
			return fmt.Errorf("failed to decode plugin config: %w", err)
		}
	}
	conf, err := parseConfig(raw)
	if err != nil {
		return fmt.Errorf("invalid plugin config: %w", err)
	}
	c, err := client.New(conf.Address, client.WithDefaultNamespace(conf.Namespace), client.WithTimeout(callTimeout))
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
	}, d.logger)
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
		gc:       image.NewGC(c, conf.Namespace, conf.Images.GC, d.logger),
	}
	if cfg.AgentConfig != nil {
		st.nomadConfig = cfg.AgentConfig.Driver
	}

	d.mu.Lock()
	defer d.mu.Unlock()
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
		st.reconciler = d.startReconciler(st)
	}
	d.st = st
	return nil
}

// state is what one SetConfig established: the config, the containerd
// connection and what works through it. SetConfig replaces it as a whole;
// a start keeps the one it began with.
type state struct {
	config      *Config
	nomadConfig *base.ClientDriverConfig
	client      *client.Client
	images      *image.Manager
	runtime     *executor.Runtime
	networks    *network.Manager
	verifier    *trust.Verifier
	gc          *image.GC
	reconciler  *reconciler // nil with gc.container = false

	closeOnce sync.Once
}

// close stops the reconciler and the GC and closes the containerd
// connection. Running tasks are untouched.
func (s *state) close() {
	s.closeOnce.Do(func() {
		if s.reconciler != nil {
			s.reconciler.stop()
		}
		s.gc.Stop()
		_ = s.client.Close()
	})
}

func (d *Driver) current() (*state, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.st == nil {
		return nil, fmt.Errorf("driver is not configured yet")
	}
	return d.st, nil
}

// TaskEvents streams the driver's task events to Nomad.
func (d *Driver) TaskEvents(ctx context.Context) (<-chan *drivers.TaskEvent, error) {
	return d.eventer.TaskEvents(ctx)
}

// emit sends a task event; a full or closed event stream never blocks a task.
func (d *Driver) emit(cfg *drivers.TaskConfig, msg string, annotations map[string]string) {
	ev := &drivers.TaskEvent{
		TaskID:      cfg.ID,
		AllocID:     cfg.AllocID,
		TaskName:    cfg.Name,
		Timestamp:   time.Now(),
		Message:     msg,
		Annotations: annotations,
	}
	if err := d.eventer.EmitEvent(ev); err != nil {
		d.logger.Warn("failed to emit task event", "task_id", cfg.ID, "error", err)
	}
}

// Shutdown releases the containerd connection; running tasks are untouched.
func (d *Driver) Shutdown() {
	d.cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st != nil {
		d.st.close()
	}
}
