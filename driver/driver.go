package driver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/drivers/shared/eventer"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/image/trust"
	"github.com/nomad-containerd/nomad-driver-containerd/network"
	"github.com/nomad-containerd/nomad-driver-containerd/userns"
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

// Driver runs Nomad tasks as containerd containers.
type Driver struct {
	eventer *eventer.Eventer
	ctx     context.Context
	cancel  context.CancelFunc
	logger  hclog.Logger
	tasks   *taskStore
	// recovery bounds how long recoveries wait for containerd together.
	recovery recoveryWindow
	// creates bounds the containers created at once.
	creates createSlots
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

	// logs is the collector of the tasks whose output the driver collects
	// (logging.collector = "driver").
	logs logCollector

	// verified remembers the digests verified under the trust rules
	// across SetConfig calls; its entries hold only for unchanged rules.
	verified *trust.Memory
	// clients are the containerd connections, kept across SetConfig.
	clients clients

	mu sync.RWMutex // guards st
	// st is what the last SetConfig established; nil before the first.
	st *state
}

// New returns the plugin; main passes it to plugins.Serve.
func New(logger hclog.Logger) *Driver {
	ctx, cancel := context.WithCancel(context.Background())
	logger = logger.Named(pluginName)
	return &Driver{
		eventer:  eventer.NewEventer(ctx, logger),
		ctx:      ctx,
		cancel:   cancel,
		logger:   logger,
		tasks:    newTaskStore(),
		creates:  newCreateSlots(maxCreates),
		verified: trust.NewMemory(),
	}
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
	cdi         *cdiRegistry
	// ids hands out the host ID ranges of tasks' user namespaces and
	// knows those that live tasks hold.
	ids *userns.Pool
	// labelledIDs holds the ranges of existing containers in ids before
	// the first new reservation.
	labelledIDs labelledIDs
	// stopReconciler stops the dangling container reconciler; nil with
	// gc.container = false.
	stopReconciler func()

	closeOnce sync.Once
}

// close stops the reconciler and the GC. Running tasks are untouched, and
// so is the containerd connection, which their handles use (see clients).
func (s *state) close() {
	s.closeOnce.Do(func() {
		if s.stopReconciler != nil {
			s.stopReconciler()
		}
		s.gc.Stop()
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

// runtimeIn is st's runtime for containerd namespace ns; "" is the
// configured namespace (task states written before it was saved).
func (d *Driver) runtimeIn(st *state, ns string) *executor.Runtime {
	if ns == "" || ns == st.config.Namespace {
		return st.runtime
	}
	d.namespaces.add(ns)
	return executor.New(st.client, ns, d.logger)
}

// inConfiguredNamespace reports whether ns is the namespace the image
// manager and image GC of st work in ("" is).
func inConfiguredNamespace(st *state, ns string) bool {
	return ns == "" || ns == st.config.Namespace
}
