package network

import (
	"fmt"
	"os"
	"path/filepath"

	cnilibrary "github.com/containernetworking/cni/libcni"
)

// Missing lists the plugin types found as an executable in none of the bin
// dirs. c must be validated (defaults applied).
func (c Config) Missing(types []string) []string {
	var missing []string
	for _, p := range types {
		found := false
		for _, d := range c.BinDirs {
			if st, err := os.Stat(filepath.Join(d, p)); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, p)
		}
	}
	return missing
}

// NamedNetwork is a network of the conf dir (network_mode = "cni/<name>").
type NamedNetwork struct {
	Name    string
	File    string
	Plugins []string // plugin types in chain order
	Err     error    // the file could not be read as a CNI config
}

// NamedNetworks lists the networks in the conf dir, one per config file
// (.conflist, .conf, .json) in the order CNI reads them. A missing conf dir
// holds none.
func (c Config) NamedNetworks() ([]NamedNetwork, error) {
	files, err := cnilibrary.ConfFiles(c.ConfDir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, fmt.Errorf("failed to read cni.conf_dir %s: %w", c.ConfDir, err)
	}
	nets := make([]NamedNetwork, 0, len(files))
	for _, f := range files {
		list, err := loadConfFile(f)
		if err != nil {
			nets = append(nets, NamedNetwork{File: f, Err: err})
			continue
		}
		n := NamedNetwork{Name: list.Name, File: f}
		for _, p := range list.Plugins {
			n.Plugins = append(n.Plugins, p.Network.Type)
		}
		nets = append(nets, n)
	}
	return nets, nil
}
