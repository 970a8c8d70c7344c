package driver

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
)

const (
	// fingerprintPeriod is how often health is re-checked. containerd
	// offers no event for its own health, so Nomad's periodic fingerprint
	// is the signal here.
	fingerprintPeriod = 15 * time.Second
	// fingerprintTimeout bounds each containerd call of a fingerprint.
	fingerprintTimeout = 5 * time.Second
)

// Fingerprint reports the driver's health and attributes to Nomad.
func (d *Driver) Fingerprint(ctx context.Context) (<-chan *drivers.Fingerprint, error) {
	return periodic(ctx, d.ctx, nil, fingerprintPeriod, func() (*drivers.Fingerprint, bool) {
		return d.fingerprint(ctx), true
	}), nil
}

// fingerprint is healthy only when containerd answers and the configured
// runtime exists; every call has a deadline.
func (d *Driver) fingerprint(ctx context.Context) *drivers.Fingerprint {
	st, err := d.current()
	if err != nil {
		return &drivers.Fingerprint{Health: drivers.HealthStateUndetected, HealthDescription: "driver is not configured"}
	}
	ctx, cancel := context.WithTimeout(ctx, fingerprintTimeout)
	defer cancel()
	unhealthy := func(format string, args ...any) *drivers.Fingerprint {
		msg := fmt.Sprintf(format, args...)
		d.logger.Warn("driver unhealthy", "reason", msg)
		return &drivers.Fingerprint{
			Attributes:        map[string]*pstructs.Attribute{"driver.containerd": pstructs.NewBoolAttribute(false)},
			Health:            drivers.HealthStateUnhealthy,
			HealthDescription: msg,
		}
	}
	v, err := st.client.Version(ctx)
	if err != nil {
		return unhealthy("containerd at %s is not answering: %v", st.config.Address, err)
	}
	rt, err := st.client.RuntimeInfo(ctx, st.config.Runtime, nil)
	if err != nil {
		return unhealthy("runtime %q is not available in containerd %s: %v", st.config.Runtime, v.Version, err)
	}
	fp := &drivers.Fingerprint{
		Attributes: map[string]*pstructs.Attribute{
			"driver.containerd":             pstructs.NewBoolAttribute(true),
			"driver.containerd.version":     pstructs.NewStringAttribute(v.Version),
			"driver.containerd.revision":    pstructs.NewStringAttribute(v.Revision),
			"driver.containerd.runtime":     pstructs.NewStringAttribute(st.config.Runtime),
			"driver.containerd.snapshotter": pstructs.NewStringAttribute(st.config.Snapshotter),
			"driver.containerd.namespace":   pstructs.NewStringAttribute(st.config.Namespace),
		},
		Health:            drivers.HealthStateHealthy,
		HealthDescription: drivers.DriverHealthy,
	}
	d.fingerprintRunc(fp, st.config.Runtime, rt.Features)
	if used, ok := st.gc.DiskUsage(ctx); ok {
		fp.Attributes["driver.containerd.images.disk_used_percent"] = pstructs.NewFloatAttribute(math.Round(used*10)/10, "")
		if high := st.config.Images.GC.Disk.High; high > 0 {
			fp.Attributes["driver.containerd.images.disk_pressure"] = pstructs.NewBoolAttribute(used > high)
		}
	}
	// userns_mode = "auto" needs the layers and Nomad's directories
	// mounted idmapped
	if caps, err := st.client.GetSnapshotterCapabilities(ctx, st.config.Snapshotter); err == nil {
		missing := UserNSMissing(caps, rt.Features)
		fp.Attributes["driver.containerd.userns"] = pstructs.NewBoolAttribute(len(missing) == 0)
		if len(missing) > 0 {
			fp.Attributes["driver.containerd.userns.missing"] = pstructs.NewStringAttribute(strings.Join(missing, ","))
		}
	}
	// the built-in bridge network needs the reference CNI plugins; host,
	// none and group networking work without them
	missing := st.networks.MissingPlugins()
	fp.Attributes["driver.containerd.cni"] = pstructs.NewBoolAttribute(len(missing) == 0)
	if len(missing) > 0 {
		fp.Attributes["driver.containerd.cni.missing"] = pstructs.NewStringAttribute(strings.Join(missing, ","))
	}
	st.cdi.fingerprint(fp.Attributes)
	return fp
}

// fingerprintRunc reports the version of the runc that containerd's runc
// shim runs (from its `runc features`) and flags one that lacks a fix for a
// known container breakout: driver.containerd.runc.warning says which, and
// the warning is logged when it first appears or changes. The node stays
// healthy: the operator decides.
func (d *Driver) fingerprintRunc(fp *drivers.Fingerprint, runtime string, features any) {
	r, ok := RuncFromFeatures(runtime, features)
	if !ok {
		return // another runtime: its version is not runc's
	}
	if r.Version != "" {
		fp.Attributes["driver.containerd.runc.version"] = pstructs.NewStringAttribute(r.Version)
	}
	if r.Warning != "" {
		fp.Attributes["driver.containerd.runc.warning"] = pstructs.NewStringAttribute(r.Warning)
	}
	if old, _ := d.runcWarning.Swap(r.Warning).(string); old != r.Warning && r.Warning != "" {
		d.logger.Warn("runc lacks breakout fixes", "version", r.Version, "commit", r.Commit, "missing", strings.Join(r.Missing, ","), "warning", r.Warning)
	}
}
