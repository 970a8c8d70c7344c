package driver

import (
	"fmt"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// The driver makes the network namespace of every task group with a network
// mode of its own (bridge, cni/<name>, none) that holds one of its tasks
// (Capabilities.MustInitiateNetwork): Nomad then attaches it to its bridge
// or CNI network and hands it to every task of the group, as it does with
// the namespaces it makes itself. The driver's namespace needs no pause
// container; it lets every process in it bind ports below 1024, which
// tasks in a user namespace of their own cannot otherwise do in a namespace
// the host's user namespace owns, and it carries the group's
// network { hostname } to every task.
var _ drivers.DriverNetworkManager = (*Driver)(nil)

// CreateNetwork makes the group network namespace of allocation allocID,
// or returns the one there with created false (Nomad asks again after its
// client restarts).
func (d *Driver) CreateNetwork(allocID string, req *drivers.NetworkCreateRequest) (*drivers.NetworkIsolationSpec, bool, error) {
	st, err := d.current()
	if err != nil {
		return nil, false, fmt.Errorf("failed to create the network of allocation %s: %w", allocID, err)
	}
	var hostname string
	if req != nil && req.Hostname != "" {
		if err := checkHostname(req.Hostname); err != nil {
			return nil, false, fmt.Errorf("failed to create the network of allocation %s: network %w", allocID, err)
		}
		hostname = req.Hostname
	}
	path, created, err := st.networks.CreateGroupNetNS(allocID)
	if err != nil {
		return nil, false, fmt.Errorf("failed to create the network of allocation %s: %w", allocID, err)
	}
	spec := &drivers.NetworkIsolationSpec{
		Mode:   drivers.NetIsolationModeGroup,
		Path:   path,
		Labels: map[string]string{},
	}
	if hostname != "" {
		// Nomad's client adds no address (it does only for docker's
		// labels): the hosts file maps the name to the namespace's own
		// address on eth0 (groupAddress).
		spec.HostsConfig = &drivers.HostsConfig{Hostname: hostname}
	}
	d.logger.Debug("group network namespace ready", "alloc_id", allocID, "netns", path, "created", created, "hostname", hostname)
	return spec, created, nil
}

// DestroyNetwork removes the group network namespace of allocation
// allocID; it is idempotent. A spec naming another path than the driver's
// own for the allocation is refused: the driver removes only what it made.
func (d *Driver) DestroyNetwork(allocID string, spec *drivers.NetworkIsolationSpec) error {
	st, err := d.current()
	if err != nil {
		return fmt.Errorf("failed to destroy the network of allocation %s: %w", allocID, err)
	}
	path, err := st.networks.GroupNetNSPath(allocID)
	if err != nil {
		return fmt.Errorf("failed to destroy the network of allocation %s: %w", allocID, err)
	}
	if spec != nil && spec.Path != "" && spec.Path != path {
		return fmt.Errorf("failed to destroy the network of allocation %s: netns path %q is not the driver's %q for it", allocID, spec.Path, path)
	}
	if err := st.networks.RemoveGroupNetNS(allocID); err != nil {
		return fmt.Errorf("failed to destroy the network of allocation %s: %w", allocID, err)
	}
	return nil
}
