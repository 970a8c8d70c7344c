package driver

import (
	"context"
	"fmt"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// setupNetwork creates the task's netns on a driver-run CNI network with
// its port maps; other modes need nothing here.
func (d *Driver) setupNetwork(st *state, cfg *drivers.TaskConfig, p *plan) (*network.Result, error) {
	if p.net.kind != netCNI {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(d.ctx, networkTimeout)
	defer cancel()
	res, err := st.networks.Setup(ctx, network.Request{ID: p.containerID, Network: p.net.cni, Ports: p.ports.Mappings, AnyPortBinds: len(p.spec.UserNS) > 0})
	if err != nil {
		return nil, structs.NewRecoverableError(fmt.Errorf("network_mode %q: %w", p.net, err), true)
	}
	p.spec.NetNSPath = res.NetNSPath
	d.emit(cfg, fmt.Sprintf("Network %s: address %s", p.net, res.IP), map[string]string{"ip": res.IP})
	return res, nil
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
