package executor

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
)

// ContainerInfo is what the container record says of a container.
type ContainerInfo struct {
	ID        string
	Namespace string // the containerd namespace it lives in
	Image     string
	Labels    map[string]string
	CreatedAt time.Time
}

// Containers lists the containers of the namespace that match the
// containerd filters (e.g. `labels."nomad.driver"==containerd`); none lists
// them all.
func (r *Runtime) Containers(ctx context.Context, filters ...string) ([]ContainerInfo, error) {
	recs, err := r.client.ContainerService().List(r.withNS(ctx), filters...)
	if err != nil {
		return nil, fmt.Errorf("failed to list containers: %w", err)
	}
	out := make([]ContainerInfo, 0, len(recs))
	for _, c := range recs {
		out = append(out, ContainerInfo{ID: c.ID, Namespace: r.namespace, Image: c.Image, Labels: c.Labels, CreatedAt: c.CreatedAt})
	}
	return out, nil
}

// DeleteTask kills every process of container id and deletes its task,
// keeping the container record. A container or task that does not exist is
// success.
func (r *Runtime) DeleteTask(ctx context.Context, id string) error {
	ctx = r.withNS(ctx)
	container, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to load container %s: %w", id, err)
	}
	return deleteTask(ctx, container)
}
