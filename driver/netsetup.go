package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// pendingNetwork is a task's driver-run CNI network whose ADD runs in the
// background while the container and its task are created.
type pendingNetwork struct {
	mode netMode
	done chan struct{} // closed when the ADD returned
	res  *network.Result
	err  error
	took time.Duration // the ADD's own time
}

// startNetwork creates the task's netns on a driver-run CNI network, puts
// its path into the spec and starts the CNI ADD (with the port maps) in
// the background; other modes need nothing here (nil). Every path after
// it must wait for the ADD: awaitNetwork, or discardNetwork on failure.
func (d *Driver) startNetwork(st *state, p *plan) (*pendingNetwork, error) {
	if p.net.kind != netCNI {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(d.ctx, networkTimeout)
	prep, err := st.networks.Prepare(ctx, network.Request{ID: p.containerID, Network: p.net.cni, Ports: p.ports.Mappings, AnyPortBinds: len(p.spec.UserNS) > 0})
	if err != nil {
		cancel()
		return nil, networkError(p.net, err)
	}
	p.spec.NetNSPath = prep.NetNSPath()
	n := &pendingNetwork{mode: p.net, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		defer cancel()
		began := time.Now()
		n.res, n.err = st.networks.Attach(ctx, prep)
		n.took = time.Since(began)
	}()
	return n, nil
}

// networkError names the task's network_mode in err and makes it
// recoverable.
func networkError(mode netMode, err error) error {
	return structs.NewRecoverableError(fmt.Errorf("network_mode %q: %w", mode, err), true)
}

// wait returns the ADD's result once it is there. A failed ADD has undone
// itself (DEL, netns removed).
func (n *pendingNetwork) wait() (*network.Result, error) {
	<-n.done
	if n.err != nil {
		return nil, networkError(n.mode, n.err)
	}
	return n.res, nil
}

// awaitNetwork waits for the task's network, when it has one of the
// driver's, and writes its hosts and resolv.conf files with what the ADD
// returned: the last step before the task's process may run.
func (d *Driver) awaitNetwork(cfg *drivers.TaskConfig, n *pendingNetwork, files *netFiles) (*network.Result, error) {
	var res *network.Result
	if n != nil {
		var err error
		if res, err = n.wait(); err != nil {
			return nil, err
		}
		d.emit(cfg, fmt.Sprintf("Network %s: address %s", n.mode, res.IP), map[string]string{"ip": res.IP})
	}
	if err := files.write(res); err != nil {
		return nil, err
	}
	return res, nil
}

// discardNetwork, after a failed start, waits for the ADD and tears down
// what it made.
func (d *Driver) discardNetwork(st *state, n *pendingNetwork, id string) {
	if n == nil {
		return
	}
	res, err := n.wait()
	if err != nil {
		return
	}
	if terr := d.teardownNetwork(st, res.Attachment); terr != nil {
		d.logger.Error("failed to tear down network after a failed start", "container_id", id, "error", terr)
	}
}

// teardownNetwork removes a task's CNI network; it is idempotent.
func (d *Driver) teardownNetwork(st *state, a network.Attachment) error {
	ctx, cancel := context.WithTimeout(d.ctx, networkTimeout)
	defer cancel()
	if err := st.networks.Teardown(ctx, a); err != nil {
		return fmt.Errorf("failed to tear down network %q of container %s: %w", a.Network, a.ID, err)
	}
	return nil
}
