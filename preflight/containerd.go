package preflight

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
)

// snapshotterPlugin is containerd's plugin type of snapshotters.
const snapshotterPlugin = "io.containerd.snapshotter.v1"

// checkContainerd checks that containerd answers at the configured address,
// that it has the configured runtime (and which runc that runs) and the
// configured snapshotter, and whether userns_mode = "auto" can run.
// Without containerd the others cannot be judged and fail as such.
func checkContainerd(ctx context.Context, conf *config, timeout time.Duration) []Result {
	cd := Result{Name: "containerd"}
	rt := Result{Name: "runtime"}
	sn := Result{Name: "snapshotter"}
	us := Result{Name: "userns"}
	down := func(detail, fix string) []Result {
		cd.Status, cd.Detail, cd.Fix = Fail, detail, fix
		for _, r := range []*Result{&rt, &sn, &us} {
			r.Status, r.Detail = Fail, "not checked: containerd is not reachable"
			r.Fix = "fix containerd first"
		}
		return []Result{cd, rt, sn, us}
	}
	if _, err := os.Stat(conf.Address); err != nil {
		return down(fmt.Sprintf("socket %s: %v", conf.Address, errText(err)),
			"start containerd (systemctl start containerd), or set address to the socket it listens on")
	}
	c, err := client.New(conf.Address, client.WithDefaultNamespace(conf.Namespace), client.WithTimeout(timeout))
	if err != nil {
		return down(fmt.Sprintf("failed to connect to %s: %v", conf.Address, err),
			"check that containerd listens on address and that this user may open the socket (run as root)")
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := c.Version(cctx)
	if err != nil {
		return down(fmt.Sprintf("containerd at %s does not answer: %v", conf.Address, err),
			"check containerd's log (journalctl -u containerd) and that address is its grpc socket")
	}
	cd.Status, cd.Detail = Pass, fmt.Sprintf("containerd %s at %s", v.Version, conf.Address)
	if v.Revision != "" {
		cd.Detail = fmt.Sprintf("containerd %s (revision %s) at %s", v.Version, v.Revision, conf.Address)
	}
	return []Result{cd, checkRuntime(cctx, c, conf.Runtime), checkSnapshotter(cctx, c, conf.Snapshotter), checkUserNS(cctx, c, conf)}
}

// checkUserNS says whether userns_mode = "auto" can run on this node, as
// the fingerprint's driver.containerd.userns does: a failure where the
// plugin's userns.default is "auto" (every task that names no mode would
// fail), a warning otherwise (only the tasks that ask for it fail).
func checkUserNS(ctx context.Context, c *client.Client, conf *config) Result {
	r := Result{Name: "userns"}
	var features any
	if info, err := c.RuntimeInfo(ctx, conf.Runtime, nil); err == nil {
		features = info.Features
	}
	caps, _ := c.GetSnapshotterCapabilities(ctx, conf.Snapshotter)
	missing := driver.UserNSMissing(caps, features)
	if len(missing) == 0 {
		r.Status, r.Detail = Pass, `userns_mode = "auto" can run: idmapped layers, binds and tmpfs`
		return r
	}
	r.Status = Warn
	if conf.UserNS.Default == "auto" {
		r.Status = Fail
	}
	r.Detail = fmt.Sprintf(`userns_mode = "auto" cannot run here: missing %s`, strings.Join(missing, ", "))
	r.Fix = `use containerd's overlayfs snapshotter, runc 1.2 or later and Linux 6.3 or later, or keep userns.default = "host"`
	return r
}

// checkRuntime asks containerd for the runtime's features, as the
// fingerprint does, and flags a runc that lacks a breakout fix.
func checkRuntime(ctx context.Context, c *client.Client, runtime string) Result {
	r := Result{Name: "runtime"}
	info, err := c.RuntimeInfo(ctx, runtime, nil)
	if err != nil {
		r.Status, r.Detail = Fail, fmt.Sprintf("runtime %q is not available: %v", runtime, err)
		r.Fix = "install the runtime's shim (containerd-shim-runc-v2 for io.containerd.runc.v2) and runc on containerd's PATH, or set runtime"
		return r
	}
	runc, ok := driver.RuncFromFeatures(runtime, info.Features)
	switch {
	case !ok:
		r.Status, r.Detail = Pass, fmt.Sprintf("runtime %s", runtime)
	case runc.Warning != "":
		r.Status, r.Detail = Warn, fmt.Sprintf("runtime %s: %s", runtime, runc.Warning)
		r.Fix = "install a runc with the fixes (1.2.8, 1.3.3, 1.4.0 or later) where containerd's shim finds it"
	default:
		r.Status, r.Detail = Pass, fmt.Sprintf("runtime %s, runc %s", runtime, runc.Version)
	}
	return r
}

// checkSnapshotter finds the snapshotter among containerd's plugins and
// reports a load error containerd recorded for it.
func checkSnapshotter(ctx context.Context, c *client.Client, name string) Result {
	r := Result{Name: "snapshotter"}
	resp, err := c.IntrospectionService().Plugins(ctx)
	if err != nil {
		r.Status, r.Detail, r.Fix = Fail, fmt.Sprintf("failed to list containerd's plugins: %v", err), "check containerd's log"
		return r
	}
	var loaded []string
	for _, p := range resp.Plugins {
		if p.Type != snapshotterPlugin {
			continue
		}
		if p.ID != name {
			if p.InitErr == nil {
				loaded = append(loaded, p.ID)
			}
			continue
		}
		if p.InitErr != nil {
			r.Status, r.Detail = Fail, fmt.Sprintf("snapshotter %q failed to load in containerd: %s", name, p.InitErr.Message)
			r.Fix = "fix what containerd's log says about it (kernel module, backing filesystem), or set snapshotter to one that loads"
			return r
		}
		r.Status, r.Detail = Pass, fmt.Sprintf("snapshotter %s", name)
		return r
	}
	slices.Sort(loaded)
	r.Status = Fail
	r.Detail = fmt.Sprintf("snapshotter %q is not one of containerd's (loaded: %s)", name, strings.Join(loaded, ", "))
	r.Fix = "set snapshotter to a loaded one, or enable the plugin in containerd's config (disabled_plugins)"
	return r
}

// errText is err's message without the operation and path that os adds.
func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
