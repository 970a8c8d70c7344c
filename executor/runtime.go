// Package executor runs Nomad tasks as containerd containers: it builds OCI
// specs, creates containers and tasks whose stdout/stderr go straight from the
// shim to Nomad's log fifos, watches exits (with OOM kills) from containerd's
// events, and signals, stops, execs into, measures and deletes them.
package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// cleanupTimeout bounds the removal of what a failed Create made; it runs on
// a context detached from the caller's, which may be the one that failed.
const cleanupTimeout = 30 * time.Second

// Runtime creates and loads containers in one containerd namespace.
type Runtime struct {
	client    *client.Client
	namespace string
	logger    hclog.Logger
	remap     remapCaps
}

// New wraps a connected containerd client; every call uses the given
// containerd namespace.
func New(c *client.Client, namespace string, logger hclog.Logger) *Runtime {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Runtime{
		client:    c,
		namespace: namespace,
		logger:    logger.Named("executor"),
	}
}

// ContainerConfig describes one container to create.
type ContainerConfig struct {
	// ID is the container ID and also the key of its rootfs snapshot.
	ID string
	// Image must already be unpacked for Snapshotter.
	Image client.Image
	// ImageConfig is Image's config when the caller has read it already;
	// nil: Create reads it.
	ImageConfig *ocispec.ImageConfig
	// Snapshotter "" is containerd's default.
	Snapshotter string
	// Runtime "" is the client's default (io.containerd.runc.v2).
	Runtime string
	Labels  map[string]string
	Spec    SpecConfig
	// StdoutPath and StderrPath are Nomad's log fifos, already created. The
	// shim opens them itself, through descriptors Create holds (see
	// logFifos): a path that is not a fifo, or is a symlink, is refused.
	// "" discards that stream.
	StdoutPath string
	StderrPath string
	// LogRoot is the directory the log fifos must lie beneath (Nomad's
	// allocation directory); no symlink below it is followed. "" is /.
	LogRoot string
	// SpoolStdout and SpoolStderr, when set, replace the fifos: regular
	// files the shim appends the task's output to, named by paths the
	// caller keeps valid until Create returns (see logs.Task).
	SpoolStdout, SpoolStderr string
	// Cpuset, when set, is the cpuset cgroup Nomad keeps for the task; the
	// container's processes run in it (see Cpuset).
	Cpuset *Cpuset
	// Created, when set, is called once the container record exists,
	// before its task (shim, runtime create) is made: the caller times the
	// two apart, and finishes what the task needs and the record does not
	// (the staged idmapped binds). An error fails the create; the
	// container is removed.
	Created func() error
	// Staging, for a task in its own user namespace, is where its
	// idmapped binds are staged: on a snapshotter that mounts layers
	// idmapped, the root filesystem's layers are staged there too, once
	// Created returned, and the task gets a plain overlay on them.
	Staging *Staging
}

func (r *Runtime) withNS(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.namespace)
}

// Create makes the container (a new snapshot of the image, the spec from
// BuildSpecOpts plus user resolution, labels, runtime) and its task, not yet
// started. Any failure removes whatever it made before returning the error.
func (r *Runtime) Create(ctx context.Context, cfg ContainerConfig) (_ *Task, retErr error) {
	ctx = r.withNS(ctx)
	if cfg.ID == "" {
		return nil, errors.New("container id is required")
	}
	if cfg.Image == nil {
		return nil, errors.New("container image is required")
	}
	logs, err := openLogFifos(cfg.LogRoot, cfg.StdoutPath, cfg.StderrPath)
	if err != nil {
		return nil, err
	}
	defer logs.Close()
	if cfg.SpoolStdout != "" {
		logs.stdout, logs.stderr = cfg.SpoolStdout, cfg.SpoolStderr
	}
	snapshotter := cfg.Snapshotter
	if snapshotter == "" {
		snapshotter = defaults.DefaultSnapshotter
	}
	logger := r.logger.With("container_id", cfg.ID)

	imgConfig := cfg.ImageConfig
	if imgConfig == nil {
		imageSpec, err := cfg.Image.Spec(ctx)
		if err != nil {
			return nil, fmt.Errorf("failed to read config of image %s: %w", cfg.Image.Name(), err)
		}
		imgConfig = &imageSpec.Config
	}
	specOpts, err := BuildSpecOpts(*imgConfig, cfg.Spec)
	if err != nil {
		return nil, fmt.Errorf("failed to build spec: %w", err)
	}
	specOpts = append(specOpts, namedUserOpts(*imgConfig, cfg.Spec)...)
	specOpts = append(specOpts, groupAddOpts(cfg.Spec)...)
	if cfg.Spec.CheckTarget != nil {
		specOpts = append(specOpts, checkResolvedTargets(cfg.Spec.CheckTarget))
	}
	specOpts = append(specOpts, cfg.Cpuset.specOpts(cfg.ID)...)
	specOpts = append(specOpts, userNSOpts(cfg.Spec.UserNS)...)

	if _, err := r.client.ContainerService().Get(ctx, cfg.ID); err == nil {
		return nil, fmt.Errorf("container %s: %w", cfg.ID, errdefs.ErrAlreadyExists)
	} else if !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("failed to look up container %s: %w", cfg.ID, err)
	}
	// No container owns a snapshot under this key: one that exists is left
	// over from an interrupted create, and would make the new snapshot fail.
	snapshots := r.client.SnapshotService(snapshotter)
	if _, err := snapshots.Stat(ctx, cfg.ID); err == nil {
		if err := snapshots.Remove(ctx, cfg.ID); err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("failed to remove stale snapshot %s: %w", cfg.ID, err)
		}
		logger.Warn("removed a stale snapshot left by an earlier create", "snapshotter", snapshotter)
	} else if !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("failed to use snapshotter %s: %w", snapshotter, err)
	}

	defer func() {
		if retErr == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := r.remove(cctx, cfg.ID, snapshotter); err != nil {
			logger.Error("failed to clean up after a failed create", "error", err)
		}
	}()

	var fs rootFS
	snapshot := newSnapshot(cfg.ID, cfg.Image, cfg.Spec.UserNS)
	if cfg.Staging != nil && len(cfg.Spec.UserNS) > 0 {
		remaps, err := r.remap.remapsIDs(ctx, r.client, snapshotter)
		if err != nil {
			return nil, err
		}
		if remaps {
			snapshot = withMappedSnapshot(cfg.ID, cfg.Image, cfg.Spec.UserNS, &fs)
		}
	}
	containerOpts := []client.NewContainerOpts{
		client.WithImage(cfg.Image),
		client.WithSnapshotter(snapshotter),
		snapshot,
		client.WithContainerLabels(cfg.Labels),
	}
	if cfg.Runtime != "" {
		containerOpts = append(containerOpts, client.WithRuntime(cfg.Runtime, nil))
	}
	// The spec comes last: resolving a named user needs the snapshot.
	containerOpts = append(containerOpts, client.WithNewSpec(specOpts...), withSnapshotRef(&fs))
	container, err := r.client.NewContainer(ctx, cfg.ID, containerOpts...)
	if err != nil {
		return nil, fmt.Errorf("failed to create container %s: %w", cfg.ID, err)
	}
	if cfg.Created != nil {
		if err := cfg.Created(); err != nil {
			return nil, err
		}
	}

	var taskOpts []client.NewTaskOpts
	if fs.own {
		rootfs, err := cfg.Staging.StageRootFS(fs.mounts)
		if err != nil {
			return nil, err
		}
		taskOpts = append(taskOpts, client.WithRootFS(rootfs))
	}
	task, err := container.NewTask(ctx, logCreator(logs.stdout, logs.stderr), taskOpts...)
	if err != nil {
		return nil, fmt.Errorf("failed to create task: %w", err)
	}
	// the init process has not run the task's program yet: all it forks
	// inherits the cpuset
	if err := cfg.Cpuset.join(task.Pid()); err != nil {
		return nil, err
	}
	logger.Debug("created container and task", "pid", task.Pid(), "snapshotter", snapshotter)
	t := newTask(r, cfg.ID, container, task)
	// the pid is the container's own now; after a reattach it may not be
	t.oomFile = oomCounterFile(task.Pid())
	return t, nil
}

// Load reattaches to an existing container and its task, e.g. after the
// plugin restarted, and resumes watching for its exit. A task that exited
// while nobody watched reports its real exit status; one that is gone while
// its container is still there has exited with an unknown status (see
// lostExit). The error wraps errdefs.ErrNotFound when the container is gone.
func (r *Runtime) Load(ctx context.Context, id string) (*Task, error) {
	ctx = r.withNS(ctx)
	container, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("failed to load container %s: %w", id, err)
	}
	task, err := container.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		t := newTask(r, id, container, goneTask{id: id})
		t.recordExit(lostExit(id, err))
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to load task %s: %w", id, err)
	}
	t := newTask(r, id, container, task)
	t.subscribeOOM()
	t.startWatch()
	return t, nil
}

// Remove deletes a container by ID: its task is killed and deleted first,
// then the container and its snapshot. A container that does not exist is
// success.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	return r.remove(r.withNS(ctx), id, "")
}

func (r *Runtime) remove(ctx context.Context, id, snapshotter string) error {
	container, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		if snapshotter == "" {
			return nil
		}
		if err := r.client.SnapshotService(snapshotter).Remove(ctx, id); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("failed to remove snapshot %s: %w", id, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to load container %s: %w", id, err)
	}
	if err := deleteTask(ctx, container); err != nil {
		return err
	}
	return deleteContainer(ctx, container)
}

// deleteTask kills (all processes) and deletes the container's task, if any.
func deleteTask(ctx context.Context, container client.Container) error {
	task, err := container.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to load task %s: %w", container.ID(), err)
	}
	if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("failed to delete task %s: %w", container.ID(), err)
	}
	return nil
}

func deleteContainer(ctx context.Context, container client.Container) error {
	if err := container.Delete(ctx, client.WithSnapshotCleanup, withOwnSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("failed to delete container %s: %w", container.ID(), err)
	}
	return nil
}
