package network

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
)

// Prepared is a task's netns, made and not yet attached to its network:
// its path can go into the container's spec while Attach runs the ADD.
type Prepared struct {
	a   Attachment
	n   *cniNet
	log hclog.Logger
}

// NetNSPath is the path of the prepared netns.
func (p *Prepared) NetNSPath() string { return p.a.NetNSPath }

// Setup creates the task's netns and attaches it (eth0 plus loopback) to the
// network with CNI ADD: Prepare, then Attach. On any failure nothing is left
// behind.
func (m *Manager) Setup(ctx context.Context, req Request) (*Result, error) {
	p, err := m.Prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	return m.Attach(ctx, p)
}

// Prepare checks req, loads its network's config and creates the task's
// netns (with the AnyPortBinds sysctl set), without running any plugin. A
// netns left at the same path by an earlier, unfinished run is torn down
// first. On failure nothing is left; on success the caller must call
// Attach, which cleans up after itself when it fails.
func (m *Manager) Prepare(ctx context.Context, req Request) (*Prepared, error) {
	if req.ID == "" {
		return nil, fmt.Errorf("failed to set up network %q: empty task id", req.Network)
	}
	if req.Network == "" {
		req.Network = BuiltinNetwork
	}
	name, conf, err := m.conflist(req.Network)
	if err != nil {
		return nil, fmt.Errorf("failed to set up network %q: %w", req.Network, err)
	}
	n, err := m.cniFor(name, conf)
	if err != nil {
		return nil, fmt.Errorf("failed to set up network %q: %w", req.Network, err)
	}
	a := Attachment{
		ID: req.ID, Network: req.Network, NetNSPath: m.NetNSPath(req.ID),
		IfName: IfName, Ports: req.Ports, ConfName: name,
	}
	log := m.logger.With("id", req.ID, "network", req.Network, "netns", a.NetNSPath)

	if _, err := os.Lstat(a.NetNSPath); err == nil {
		log.Warn("tearing down a network left by an earlier run")
		if err := m.Teardown(ctx, a); err != nil {
			return nil, fmt.Errorf("failed to set up network %q: %w", req.Network, err)
		}
	}
	if err := os.MkdirAll(m.cfg.NetNSDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to set up network %q: failed to create netns dir: %w", req.Network, err)
	}
	var setup []func() error
	if req.AnyPortBinds {
		setup = append(setup, allowLowPorts)
	}
	if err := createNetNS(a.NetNSPath, setup...); err != nil {
		return nil, fmt.Errorf("failed to set up network %q: %w", req.Network, err)
	}
	return &Prepared{a: a, n: n, log: log}, nil
}

// Attach runs CNI ADD on a prepared netns. On any failure it runs DEL,
// removes the netns and returns CNI's error wrapped; nothing is left
// behind.
func (m *Manager) Attach(ctx context.Context, p *Prepared) (*Result, error) {
	a := p.a
	cid := ContainerID(a.ID)
	res, err := m.add(ctx, p.n, cid, a.NetNSPath, a.Ports)
	if err == nil {
		err = fillResult(&a, res)
	}
	if err != nil {
		err = fmt.Errorf("failed to set up network %q: %w", a.Network, err)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		// The ADD's error is the one that matters; what the DEL could not
		// undo (often the same broken plugin) is logged.
		if derr := m.del(cctx, p.n, cid, a.NetNSPath, a.Ports, true); derr != nil {
			p.log.Warn("failed to undo all of a failed network setup", "error", derr)
		}
		if rerr := removeNetNS(a.NetNSPath); rerr != nil {
			p.log.Error("failed to remove the netns of a failed network setup", "error", rerr)
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	out := &Result{Attachment: a, DNS: dnsOf(res)}
	p.log.Debug("network set up", "ip", a.IP, "gateway", a.Gateway, "ports", len(a.Ports))
	return out, nil
}
