package network

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	cnilibrary "github.com/containernetworking/cni/libcni"
)

// errNoConflist says a named network has no config in the conf dir.
var errNoConflist = errors.New("no such network")

// conflist returns the CNI network name and conflist bytes for network: the
// built-in one generated from Config, or the conflist (or single-plugin
// .conf) in ConfDir whose "name" is network. Files are read on every call,
// so edits in the conf dir take effect for the next task.
func (m *Manager) conflist(network string) (string, []byte, error) {
	if network == BuiltinNetwork {
		b, err := DefaultConflist(m.cfg.BridgeName, m.cfg.Subnet)
		return m.cfg.BridgeName, b, err
	}
	files, err := cnilibrary.ConfFiles(m.cfg.ConfDir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return "", nil, fmt.Errorf("failed to read cni.conf_dir %s: %w", m.cfg.ConfDir, err)
	}
	var names []string
	for _, f := range files {
		list, err := loadConfFile(f)
		if err != nil {
			m.logger.Debug("skipping unreadable CNI config", "file", f, "error", err)
			continue
		}
		if list.Name == network {
			return list.Name, list.Bytes, nil
		}
		names = append(names, list.Name)
	}
	found := "none"
	if len(names) > 0 {
		found = strings.Join(names, ", ")
	}
	return "", nil, fmt.Errorf("%w %q in cni.conf_dir %s (networks there: %s)",
		errNoConflist, network, m.cfg.ConfDir, found)
}

// loadConfFile reads a conflist, or a single-plugin config turned into one.
func loadConfFile(file string) (*cnilibrary.NetworkConfigList, error) {
	if filepath.Ext(file) == ".conflist" {
		return cnilibrary.ConfListFromFile(file)
	}
	list, err := cnilibrary.ConfListFromFile(file)
	if err == nil && len(list.Plugins) > 0 {
		return list, nil
	}
	conf, err := cnilibrary.ConfFromFile(file)
	if err != nil {
		return nil, err
	}
	if conf.Network.Type == "" {
		return nil, fmt.Errorf("no plugin type in %s", file)
	}
	return cnilibrary.ConfListFromConf(conf)
}
