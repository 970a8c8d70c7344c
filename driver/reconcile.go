package driver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// Bounds of the time between two reconciliation passes (half the grace).
const (
	minReconcileInterval = 100 * time.Millisecond
	maxReconcileInterval = time.Minute
)

// reconcileInterval is the time between passes: half the grace, so that a
// dangling container goes between one and one and a half graces after this
// plugin first saw it.
func reconcileInterval(grace time.Duration) time.Duration {
	return min(max(grace/2, minReconcileInterval), maxReconcileInterval)
}

// ownedByDriver reports whether labels are those this driver puts on the
// containers it creates.
func ownedByDriver(labels map[string]string) bool {
	return labels[labelDriver] == pluginName && labels[labelAllocID] != ""
}

// selectDangling picks, from the containers of the namespace, the ones to
// remove now: those carrying the driver's labels that no task of this
// plugin holds (started, starting, recovered, recovering or being
// destroyed), created at least grace ago, and unknown to this plugin for at
// least grace since it first saw them.
//
// The second clock matters after a restart: Nomad recovers its tasks with
// RecoverTask some time after SetConfig, and until then every container
// looks unknown, however old it is. Counting from the first sighting by
// this plugin process gives Nomad a whole grace period to claim them.
//
// seen holds those first sightings; it is updated in place: containers that
// are gone or held by a task again are dropped, so that a container that
// becomes unknown later (its task forgotten) starts a new grace period.
func selectDangling(now time.Time, grace time.Duration, ctrs []executor.ContainerInfo, known func(string) bool, seen map[string]time.Time) []executor.ContainerInfo {
	unknown := make(map[string]bool, len(ctrs))
	var out []executor.ContainerInfo
	for _, c := range ctrs {
		if !ownedByDriver(c.Labels) || known(c.ID) {
			continue
		}
		unknown[c.ID] = true
		first, ok := seen[c.ID]
		if !ok {
			first = now
			seen[c.ID] = now
		}
		if now.Sub(c.CreatedAt) >= grace && now.Sub(first) >= grace {
			out = append(out, c)
		}
	}
	for id := range seen {
		if !unknown[id] {
			delete(seen, id)
		}
	}
	return out
}

// reconciler removes dangling containers on a timer: every interval it
// lists the driver's containers and removes those selectDangling picks.
type reconciler struct {
	grace    time.Duration
	interval time.Duration
	list     func(ctx context.Context) ([]executor.ContainerInfo, error)
	remove   func(ctx context.Context, c executor.ContainerInfo) error
	sweep    func() // releases what dead starts left staged
	tasks    *taskStore
	logger   hclog.Logger

	seen map[string]time.Time // only the loop touches it

	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// startReconciler starts the dangling container reconciler for st; its
// first pass runs at once (and only notes first sightings).
func (d *Driver) startReconciler(st *state) *reconciler {
	ctx, cancel := context.WithCancel(d.ctx)
	r := &reconciler{
		grace:    st.config.Containers.Grace,
		interval: reconcileInterval(st.config.Containers.Grace),
		list:     func(ctx context.Context) ([]executor.ContainerInfo, error) { return d.listOwned(ctx, st) },
		remove:   func(ctx context.Context, c executor.ContainerInfo) error { return d.removeDangling(ctx, st, c) },
		sweep:    func() { d.sweepStaged(st) },
		tasks:    d.tasks,
		logger:   d.logger.Named("reconciler"),
		seen:     map[string]time.Time{},
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go r.run()
	return r
}

func (r *reconciler) run() {
	defer close(r.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-timer.C:
		}
		r.pass(time.Now())
		timer.Reset(r.interval)
	}
}

// pass removes what selectDangling picks; a removal that fails is tried
// again at the next pass.
func (r *reconciler) pass(now time.Time) {
	if r.sweep != nil {
		r.sweep()
	}
	ctx, cancel := context.WithTimeout(r.ctx, callTimeout)
	ctrs, err := r.list(ctx)
	cancel()
	if err != nil {
		if r.ctx.Err() == nil {
			r.logger.Warn("failed to list containers", "error", err)
		}
		return
	}
	for _, c := range selectDangling(now, r.grace, ctrs, r.tasks.Known, r.seen) {
		if !r.tasks.ClaimDangling(c.ID) {
			continue // a task took it meanwhile
		}
		ctx, cancel := context.WithTimeout(r.ctx, callTimeout+networkTimeout)
		err := r.remove(ctx, c)
		cancel()
		r.tasks.ReleaseDangling(c.ID)
		log := r.logger.With("container_id", c.ID, "alloc_id", c.Labels[labelAllocID], "task", c.Labels[labelTask], "created", c.CreatedAt)
		if err != nil {
			log.Warn("failed to remove dangling container; trying again at the next pass", "error", err)
			continue
		}
		delete(r.seen, c.ID)
		log.Info("removed dangling container")
	}
}

// stop ends the loop and waits for a pass under way.
func (r *reconciler) stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		<-r.done
	})
}

// removeDangling removes a container no task holds: its processes first,
// then its driver-run network (found from its labels), then the container
// with its snapshot, so that the container record, which says what to clean
// up, goes last.
func (d *Driver) removeDangling(ctx context.Context, st *state, c executor.ContainerInfo) error {
	rt := d.runtimeIn(st, c.Namespace)
	if err := rt.DeleteTask(ctx, c.ID); err != nil {
		return err
	}
	if v := c.Labels[labelNetwork]; v != "" {
		mode, err := parseNetMode(labelNetwork, v)
		if err != nil || mode.kind != netCNI {
			return fmt.Errorf("failed to read the network of container %s: label %s=%q is not a driver-run network", c.ID, labelNetwork, v)
		}
		if err := d.teardownNetwork(st, network.Attachment{ID: c.ID, Network: mode.cni}); err != nil {
			return err
		}
	}
	if err := rt.Remove(ctx, c.ID); err != nil {
		return err
	}
	if _, ok := c.Labels[labelUserNS]; ok {
		st.ids.Release(c.ID)
	}
	if inConfiguredNamespace(st, c.Namespace) {
		st.gc.Release(c.Image)
	}
	return nil
}

// listOwned lists the containers carrying the driver's labels in the
// configured namespace and in every other namespace the plugin has tasks in.
func (d *Driver) listOwned(ctx context.Context, st *state) ([]executor.ContainerInfo, error) {
	var out []executor.ContainerInfo
	for _, ns := range d.namespaces.list(st.config.Namespace) {
		cs, err := d.runtimeIn(st, ns).Containers(ctx, fmt.Sprintf("labels.%q==%s", labelDriver, pluginName))
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}
