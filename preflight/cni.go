package preflight

import (
	"fmt"
	"strings"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// checkCNI checks that cni.bin_dir holds the plugins of the built-in
// network and of every network in cni.conf_dir, and that a default network
// mode naming a conflist finds it.
func checkCNI(conf *config) []Result {
	cni := conf.CNI
	dirs := strings.Join(cni.BinDirs, ":")
	fix := func(missing []string) string {
		return fmt.Sprintf("install the CNI reference plugins (%s) into cni.bin_dir %s, or point bin_dir at where they are", strings.Join(missing, ", "), dirs)
	}
	defMode := conf.DefaultNetworkMode.String()
	builtin := Result{Name: "cni " + network.BuiltinNetwork}
	if missing := cni.Missing(network.RequiredPlugins); len(missing) > 0 {
		builtin.Status, builtin.Fix = Fail, fix(missing)
		builtin.Detail = fmt.Sprintf("the built-in %q network needs plugins %s, missing from %s", network.BuiltinNetwork, strings.Join(missing, ", "), dirs)
		if defMode != network.BuiltinNetwork {
			// only tasks that ask for it are refused
			builtin.Status = Warn
		}
	} else {
		builtin.Status = Pass
		builtin.Detail = fmt.Sprintf("the built-in %q network: plugins %s in %s", network.BuiltinNetwork, strings.Join(network.RequiredPlugins, ", "), dirs)
	}
	out := []Result{builtin}

	nets, err := cni.NamedNetworks()
	if err != nil {
		return append(out, Result{Name: "cni networks", Status: Fail, Detail: err.Error(), Fix: "make cni.conf_dir a readable directory"})
	}
	wantDefault, hasDefault := strings.CutPrefix(defMode, "cni/")
	for _, n := range nets {
		r := Result{Name: "cni " + n.Name}
		switch missing := cni.Missing(n.Plugins); {
		case n.Err != nil:
			r.Name, r.Status = "cni "+n.File, Fail
			r.Detail = fmt.Sprintf("failed to read %s: %v", n.File, n.Err)
			r.Fix = "correct or remove the file"
		case len(missing) > 0:
			r.Status, r.Fix = Fail, fix(missing)
			r.Detail = fmt.Sprintf("network %q (%s) needs plugins %s, missing from %s", n.Name, n.File, strings.Join(missing, ", "), dirs)
		default:
			r.Status = Pass
			r.Detail = fmt.Sprintf("network %q (%s): plugins %s", n.Name, n.File, strings.Join(n.Plugins, ", "))
		}
		if n.Name == wantDefault {
			hasDefault = false
		}
		out = append(out, r)
	}
	if hasDefault {
		out = append(out, Result{Name: "cni " + wantDefault, Status: Fail,
			Detail: fmt.Sprintf("default_network_mode %q names a network that cni.conf_dir %s does not hold", defMode, cni.ConfDir),
			Fix:    fmt.Sprintf("add a conflist whose \"name\" is %q to %s, or change default_network_mode", wantDefault, cni.ConfDir)})
	}
	return out
}
