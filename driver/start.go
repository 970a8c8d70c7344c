package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/image"
	tasklogs "github.com/nomad-containerd/nomad-driver-containerd/logs"
	"github.com/nomad-containerd/nomad-driver-containerd/network"
	"github.com/nomad-containerd/nomad-driver-containerd/userns"
)

// StartTask runs a task: decode and check its config, plan the container,
// make sure the image is present, create the container and start it. A
// failure at any step leaves nothing behind.
func (d *Driver) StartTask(cfg *drivers.TaskConfig) (*drivers.TaskHandle, *drivers.DriverNetwork, error) {
	if err := d.tasks.Reserve(cfg.ID, containerID(cfg.Name, cfg.AllocID)); err != nil {
		if errors.Is(err, errBeingRemoved) {
			return nil, nil, structs.NewRecoverableError(err, true)
		}
		return nil, nil, err
	}
	h, err := d.startTask(cfg)
	if err != nil {
		d.tasks.Delete(cfg.ID)
		return nil, nil, err
	}
	d.tasks.Set(cfg.ID, h)
	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = cfg
	if err := handle.SetDriverState(&h.state); err != nil {
		_ = d.destroy(h, true)
		return nil, nil, fmt.Errorf("failed to encode task state: %w", err)
	}
	return handle, h.driverNetwork(), nil
}

func (d *Driver) startTask(cfg *drivers.TaskConfig) (_ *taskHandle, err error) {
	pt := newPhaseTimer()
	st, err := d.current()
	if err != nil {
		return nil, err
	}
	tc, err := decodeTaskConfig(cfg)
	if err != nil {
		return nil, err
	}
	if tc.PullOnly {
		return d.warmImage(st, cfg, tc)
	}
	p, err := planTask(st.config, cfg, tc)
	if err != nil {
		return nil, err
	}
	defer p.pins.close()
	if err := st.cdi.addDevices(cfg, tc.CDIDevices, p); err != nil {
		return nil, err
	}
	pt.mark("plan")
	ids, err := d.reserveTaskIDs(st, tc, p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && ids != nil {
			st.ids.Release(p.containerID)
		}
	}()
	pt.mark("ids")
	if err := d.removeLeftover(st, cfg, p); err != nil {
		return nil, err
	}
	pt.mark("leftover")
	img, info, err := d.pullImage(st, cfg, tc)
	if err != nil {
		return nil, err
	}
	hold := &imageHold{gc: st.gc, ref: info.Ref, holding: true}
	defer func() {
		if err != nil {
			hold.fail()
		}
	}()
	if d.afterImage != nil {
		d.afterImage(cfg)
	}
	pt.mark("image")
	// The CNI ADD runs while the container and its task are made; the
	// task's process starts only once it returned (awaitNetwork).
	pending, err := d.startNetwork(st, p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.discardNetwork(st, pending, p.containerID)
		}
	}()
	files, err := prepareNetworkFiles(cfg, tc, p, pending)
	if err != nil {
		return nil, err
	}
	defer files.close()
	pt.mark("netns")
	lt, logState, err := d.startLogs(st, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && lt != nil {
			lt.Stop(true)
		}
	}()
	pt.mark("logs")
	task, err := d.createContainer(st, cfg, p, img, info, lt, pt.mark)
	if err != nil {
		return nil, pendingCause(pending, err)
	}
	hold.created()
	pt.mark("task")
	if err := p.pins.verify(task.PID()); err != nil {
		d.discard(task)
		return nil, err
	}
	p.pins.close()
	pt.mark("pins")
	net, err := d.awaitNetwork(cfg, pending, files)
	if err != nil {
		d.discard(task)
		return nil, err
	}
	pt.mark("network_wait")
	if pending != nil {
		pt.add("cni_add", pending.took)
	}
	if err := d.startContainer(task); err != nil {
		return nil, err
	}
	pt.mark("start")
	state := TaskState{
		Version:     taskStateVersion,
		ContainerID: p.containerID,
		Namespace:   st.config.Namespace,
		ImageRef:    info.Ref,
		ImageDigest: info.Digest,
		StartedAt:   time.Now().UTC(),
		PID:         task.PID(),
		Logs:        logState,
		UserNS:      ids,
	}
	if net != nil {
		state.Network = &net.Attachment
		state.PortMap = p.ports.PortMap
	}
	d.emit(cfg, fmt.Sprintf("Started container %s", p.containerID), map[string]string{"image_digest": info.Digest})
	h := newHandle(cfg, task, state, d.logger)
	h.logs = lt
	d.logger.Debug("task start phases", append([]any{"container_id", p.containerID}, pt.keyvals()...)...)
	if ids != nil {
		warmNextIDs(st)
	}
	return h, nil
}

// reserveTaskIDs reserves the task's user namespace ID range when it gets
// one of its own, and puts it into the plan.
func (d *Driver) reserveTaskIDs(st *state, tc *TaskConfig, p *plan) (*userns.Range, error) {
	if ownUserNS(tc.UserNSMode, tc.Privileged, st.config.UserNS.Default) {
		if err := d.restoreLabelledIDs(st); err != nil {
			return nil, err
		}
	}
	ids, err := reserveIDs(st.ids, p.containerID, tc.UserNSMode, tc.Privileged, st.config.UserNS.Default)
	if err != nil || ids == nil {
		return nil, err
	}
	p.spec.UserNS = ids.Mappings()
	p.labels[labelUserNS] = ids.String()
	return ids, nil
}

// warmNextIDs has the user namespace of the range the next start will
// likely get (the pool hands out ranges in order) made in the background,
// now that this start is done, so that the next one finds it made.
func warmNextIDs(st *state) {
	if r, ok := st.ids.Peek(); ok {
		executor.WarmUserNS(r.Mappings())
	}
}

// prepareNetworkFiles makes the task's hosts and resolv.conf files (empty)
// and mounts them. Whether the task gets a resolv.conf may hang on the DNS
// settings its CNI result brings: then it waits for the ADD first.
func prepareNetworkFiles(cfg *drivers.TaskConfig, tc *TaskConfig, p *plan, pending *pendingNetwork) (*netFiles, error) {
	var fromCNI network.DNS
	if pending != nil && resolvAwaitsCNI(cfg, tc) {
		res, err := pending.wait()
		if err != nil {
			return nil, err
		}
		fromCNI = res.DNS
	}
	f, ms, err := makeNetFiles(cfg, tc, p.net, fromCNI, p.pins)
	if err != nil {
		return nil, err
	}
	p.spec.Mounts = append(p.spec.Mounts, ms...)
	return f, nil
}

// pendingCause is the error of a failed create: the network's, when its
// ADD failed meanwhile (it removed the netns the container was to join),
// else err.
func pendingCause(pending *pendingNetwork, err error) error {
	if pending == nil {
		return err
	}
	if _, nerr := pending.wait(); nerr != nil {
		return nerr
	}
	return err
}

// startLogs starts the driver's collection of cfg's output when the
// plugin collects logs itself; nil when Nomad's logmon does.
func (d *Driver) startLogs(st *state, cfg *drivers.TaskConfig) (*tasklogs.Task, *LogState, error) {
	if !st.config.Logging.Driver {
		return nil, nil, nil
	}
	ls := LogState{MaxFiles: st.config.Logging.Limits.MaxFiles, MaxFileSize: st.config.Logging.Limits.MaxFileSize}
	lt, err := d.logs.start(d.logger, cfg, ls, true)
	if err != nil {
		return nil, nil, err
	}
	return lt, &ls, nil
}

// decodeTaskConfig reads the task's driver config into its typed form.
func decodeTaskConfig(cfg *drivers.TaskConfig) (*TaskConfig, error) {
	var raw rawTaskConfig
	if err := cfg.DecodeDriverConfig(&raw); err != nil {
		return nil, fmt.Errorf("failed to decode task config: %w", err)
	}
	return parseTaskConfig(raw)
}

// createContainer creates the container and its (not yet started) task.
// With lt the shim appends the output to lt's spools instead of Nomad's
// fifos. mark ends the phases "container" (the container record made)
// and "stage" (the wait for the idmapped binds staged meanwhile).
func (d *Driver) createContainer(st *state, cfg *drivers.TaskConfig, p *plan, img client.Image, info image.Info, lt *tasklogs.Task, mark func(phase string)) (*executor.Task, error) {
	release, err := d.creates.acquire(d.ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	idmapped, staged, unstage := d.stageIDMapped(st, p)
	defer unstage()
	ctx, cancel := context.WithTimeout(d.ctx, callTimeout)
	defer cancel()
	cc := executor.ContainerConfig{
		ID:          p.containerID,
		Image:       img,
		ImageConfig: &info.Config,
		Snapshotter: st.config.Snapshotter,
		Runtime:     p.runtime,
		Labels:      p.labels,
		Spec:        p.spec,
		StdoutPath:  cfg.StdoutPath,
		StderrPath:  cfg.StderrPath,
		LogRoot:     cfg.AllocDir,
		Cpuset:      p.cpuset,
		Created: func() error {
			mark("container")
			defer mark("stage")
			return staged()
		},
		Staging: idmapped,
	}
	if lt != nil {
		cc.StdoutPath, cc.StderrPath = "", ""
		cc.SpoolStdout, cc.SpoolStderr = lt.Stdout, lt.Stderr
		defer lt.Release() // the shim holds its own descriptors now
	}
	task, err := st.runtime.Create(ctx, cc)
	if err != nil {
		err = fmt.Errorf("failed to create container %s: %w", p.containerID, err)
		if errdefs.IsAlreadyExists(err) {
			// a container made since removeLeftover looked: try again later
			return nil, structs.NewRecoverableError(err, true)
		}
		return nil, err
	}
	return task, nil
}

// startContainer starts the task's process; on failure the container is removed.
func (d *Driver) startContainer(task *executor.Task) error {
	ctx, cancel := context.WithTimeout(d.ctx, callTimeout)
	defer cancel()
	if err := task.Start(ctx); err != nil {
		d.discard(task)
		return fmt.Errorf("failed to start container %s: %w", task.ID(), err)
	}
	return nil
}

// discard removes a container whose start failed.
func (d *Driver) discard(task *executor.Task) {
	ctx, cancel := context.WithTimeout(d.ctx, callTimeout)
	defer cancel()
	if err := task.Delete(ctx, true); err != nil {
		d.logger.Error("failed to remove container after a failed start", "container_id", task.ID(), "error", err)
	}
}
