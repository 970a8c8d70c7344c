package preflight

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	hostsconfig "github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/pelletier/go-toml/v2"
)

// checkFiles checks what the config names on the node: the registry hosts
// tree, the trust keys, the auth file and the volume paths.
func checkFiles(ctx context.Context, conf *config) []Result {
	out := []Result{checkRegistryDir(ctx, conf.RegistryConfigDir), checkTrust(conf)}
	if conf.Images.AuthConfig != "" {
		out = append(out, checkReadable("auth", "auth.config", conf.Images.AuthConfig))
	}
	if conf.VolumesEnabled {
		out = append(out, checkHostPaths(conf.AllowedHostPaths))
	}
	return out
}

// checkRegistryDir parses every host's hosts.toml in registry_config_dir
// with containerd's own loader, the one pulls use.
func checkRegistryDir(ctx context.Context, dir string) Result {
	r := Result{Name: "registry_config_dir"}
	if dir == "" {
		r.Status, r.Detail = Pass, "not set: containerd's default registry hosts (HTTPS; plain HTTP for loopback registries)"
		return r
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		r.Status, r.Detail = Fail, fmt.Sprintf("registry_config_dir %s: %v", dir, errText(err))
		r.Fix = "create it with one directory per registry holding a hosts.toml, or unset registry_config_dir"
		return r
	}
	hosts := hostsconfig.ConfigureHosts(ctx, hostsconfig.HostOptions{HostDir: hostsconfig.HostDirFromRoot(dir)})
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		// containerd logs a hosts.toml it cannot decode and falls back
		// to the defaults, so a typo would go unnoticed: decode it here
		file := filepath.Join(dir, e.Name(), "hosts.toml")
		if b, err := os.ReadFile(file); err == nil {
			var v map[string]any
			if err := toml.Unmarshal(b, &v); err != nil {
				r.Status, r.Detail = Fail, fmt.Sprintf("registry_config_dir %s: failed to parse %s: %v; containerd would ignore it", dir, file, err)
				r.Fix = "correct " + file + " (containerd's hosts.toml format)"
				return r
			}
		}
		if _, err := hosts(e.Name()); err != nil {
			r.Status, r.Detail = Fail, fmt.Sprintf("registry_config_dir %s: %s: %v", dir, e.Name(), err)
			r.Fix = "correct " + filepath.Join(dir, e.Name(), "hosts.toml") + " (containerd's hosts.toml format)"
			return r
		}
		names = append(names, e.Name())
	}
	r.Status = Pass
	r.Detail = fmt.Sprintf("registry_config_dir %s: hosts for %s", dir, orNone(names))
	return r
}

// checkTrust reports the trust rules; their keys were read and parsed by
// the config validation, so a key that cannot be read fails the config
// line with the rule and the file named.
func checkTrust(conf *config) Result {
	t := conf.Images.Trust
	r := Result{Name: "trust", Status: Pass}
	var keys, roots []string
	for _, rule := range t.Rules {
		keys = append(keys, rule.PublicKeys...)
		if rule.TrustedRoot != "" {
			roots = append(roots, rule.TrustedRoot)
		}
	}
	r.Detail = fmt.Sprintf("default_policy %s, %d rule(s), keys readable: %s", t.DefaultPolicy, len(t.Rules), orNone(keys))
	if len(roots) > 0 {
		r.Detail += ", trusted roots readable: " + strings.Join(roots, ", ")
	}
	return r
}

func checkReadable(name, field, path string) Result {
	f, err := os.Open(path)
	if err == nil {
		f.Close()
		return Result{Name: name, Status: Pass, Detail: fmt.Sprintf("%s %s is readable", field, path)}
	}
	return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%s %s: %v", field, path, errText(err)), Fix: "create the file or correct " + field}
}

// checkHostPaths checks that each of volumes.allowed_host_paths exists.
func checkHostPaths(paths []string) Result {
	r := Result{Name: "volumes"}
	if len(paths) == 0 {
		r.Status, r.Detail = Pass, "volumes enabled for any absolute host path"
		return r
	}
	var missing []string
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", p, errText(err)))
		}
	}
	if len(missing) > 0 {
		r.Status, r.Detail = Fail, "volumes.allowed_host_paths do not exist: "+strings.Join(missing, ", ")
		r.Fix = "create them, or correct volumes.allowed_host_paths"
		return r
	}
	r.Status, r.Detail = Pass, "volumes.allowed_host_paths exist: "+strings.Join(paths, ", ")
	return r
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// checkPluginBinary checks that the agent will find the plugin: Nomad loads
// a plugin only from a file in plugin_dir named like its plugin block.
func checkPluginBinary(dir string) Result {
	r := Result{Name: "plugin_dir"}
	path := filepath.Join(dir, pluginName)
	st, err := os.Stat(path)
	switch {
	case err != nil:
		r.Status, r.Detail = Fail, fmt.Sprintf("%s: %v; Nomad loads the driver only from a file in plugin_dir named %q", path, errText(err), pluginName)
	case st.IsDir() || st.Mode()&0o111 == 0:
		r.Status, r.Detail = Fail, fmt.Sprintf("%s is not an executable file", path)
	default:
		r.Status, r.Detail = Pass, fmt.Sprintf("%s: the agent loads the driver from it", path)
		return r
	}
	r.Fix = fmt.Sprintf("install nomad-driver-containerd as %s (a copy or a symlink, mode 0755)", path)
	return r
}
