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
	if ownUserNS(tc.UserNSMode, tc.Privileged, st.config.UserNS.Default) {
		if err := d.restoreLabelledIDs(st); err != nil {
			return nil, err
		}
	}
	ids, err := reserveIDs(st.ids, p.containerID, tc.UserNSMode, tc.Privileged, st.config.UserNS.Default)
	if err != nil {
		return nil, err
	}
	if ids != nil {
		defer func() {
			if err != nil {
				st.ids.Release(p.containerID)
			}
		}()
		p.spec.UserNS = ids.Mappings()
		p.labels[labelUserNS] = ids.String()
	}
	if err := st.cdi.addDevices(cfg, tc.CDIDevices, p); err != nil {
		return nil, err
	}
	if err := d.removeLeftover(st, cfg, p); err != nil {
		return nil, err
	}
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
	net, err := d.setupNetwork(st, cfg, p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && net != nil {
			if terr := d.teardownNetwork(st, net.Attachment); terr != nil {
				d.logger.Error("failed to tear down network after a failed start", "container_id", p.containerID, "error", terr)
			}
		}
	}()
	if err := addNetworkFiles(cfg, tc, p, net); err != nil {
		return nil, err
	}
	lt, logState, err := d.startLogs(st, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && lt != nil {
			lt.Stop(true)
		}
	}()
	task, err := d.createContainer(st, cfg, p, img, info, lt)
	if err != nil {
		return nil, err
	}
	hold.created()
	if err := p.pins.verify(task.PID()); err != nil {
		d.discard(task)
		return nil, err
	}
	p.pins.close()
	if err := d.startContainer(task); err != nil {
		return nil, err
	}
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
	return h, nil
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
// fifos.
func (d *Driver) createContainer(st *state, cfg *drivers.TaskConfig, p *plan, img client.Image, info image.Info, lt *tasklogs.Task) (*executor.Task, error) {
	release, err := d.stageIDMapped(st, p)
	if err != nil {
		return nil, err
	}
	defer release()
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

// addNetworkFiles mounts the task's hosts and resolv.conf files.
func addNetworkFiles(cfg *drivers.TaskConfig, tc *TaskConfig, p *plan, net *network.Result) error {
	ms, err := networkFiles(cfg, tc, p.net, net, p.pins)
	if err != nil {
		return err
	}
	p.spec.Mounts = append(p.spec.Mounts, ms...)
	return nil
}
