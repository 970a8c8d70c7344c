package preflight

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
)

// pluginName is the name of the driver's plugin block.
const pluginName = "containerd"

// agentFile is the part of a Nomad agent config file that the check reads,
// decoded as the agent decodes it (HCL 1, or JSON).
type agentFile struct {
	DataDir   string         `hcl:"data_dir"`
	PluginDir string         `hcl:"plugin_dir"`
	Plugins   []*pluginBlock `hcl:"plugin"`
}

// agentConfig is what the check takes from the agent's config files.
type agentConfig struct {
	plugin map[string]any // the plugin block's config; nil: the defaults
	src    string         // where the block is
	// pluginDir is where the agent looks for the plugin: plugin_dir, by
	// default <data_dir>/plugins; "" when the config names neither.
	pluginDir string
}

type pluginBlock struct {
	Name   string         `hcl:",key"`
	Config map[string]any `hcl:"config"`
}

// checkConfig reads the plugin block from the agent config at path and
// validates it exactly as the agent and the driver would.
func checkConfig(path string) (*config, Result) {
	conf, _, res := checkAgent(path)
	return conf, res
}

// checkAgent is checkConfig that also returns where the agent looks for
// the plugin.
func checkAgent(path string) (*config, string, Result) {
	res := Result{Name: "config"}
	agent, err := loadAgentConfig(path)
	if err != nil {
		res.Status, res.Detail = Fail, err.Error()
		res.Fix = "give -config the Nomad agent's config file or directory"
		return nil, "", res
	}
	conf, err := ValidateConfig(agent.plugin)
	if err != nil {
		res.Status, res.Detail = Fail, fmt.Sprintf("%s: %v", agent.src, err)
		res.Fix = fmt.Sprintf("correct the plugin %q block; the options are in the README's plugin configuration table", pluginName)
		return nil, "", res
	}
	res.Status, res.Detail = Pass, fmt.Sprintf("%s: plugin %q config is valid", agent.src, pluginName)
	return conf, agent.pluginDir, res
}

// ValidateConfig decodes a plugin block's config map through the driver's
// schema and validates it with the driver's SetConfig code: its errors are
// the ones the agent would log.
func ValidateConfig(block map[string]any) (*driver.Config, error) {
	b, err := driver.EncodeAgentConfig(block)
	if err != nil {
		return nil, err
	}
	return driver.DecodeConfig(b)
}

// loadAgentConfig reads the agent config at path: a file, or a directory
// whose .hcl and .json files the agent reads in name order, a later plugin
// "containerd" block replacing an earlier one. No block means the defaults
// (a nil map), as for an agent that loads the plugin without one.
func loadAgentConfig(path string) (agentConfig, error) {
	if path == "" {
		return agentConfig{src: "defaults (no -config given)"}, nil
	}
	files, err := configFiles(path)
	if err != nil {
		return agentConfig{}, err
	}
	ac := agentConfig{src: fmt.Sprintf("%s (no plugin %q block: the defaults apply)", path, pluginName)}
	var dataDir string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return agentConfig{}, fmt.Errorf("failed to read agent config: %w", err)
		}
		var af agentFile
		if err := hcl.Decode(&af, string(b)); err != nil {
			return agentConfig{}, fmt.Errorf("failed to parse agent config %s: %w", f, err)
		}
		for _, p := range af.Plugins {
			if p != nil && p.Name == pluginName {
				ac.plugin, ac.src = p.Config, f
			}
		}
		if af.DataDir != "" {
			dataDir = af.DataDir
		}
		if af.PluginDir != "" {
			ac.pluginDir = af.PluginDir
		}
	}
	if ac.pluginDir == "" && dataDir != "" {
		ac.pluginDir = filepath.Join(dataDir, "plugins")
	}
	return ac, nil
}

func configFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read agent config: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read agent config: %w", err)
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || (!strings.HasSuffix(n, ".hcl") && !strings.HasSuffix(n, ".json")) {
			continue
		}
		files = append(files, filepath.Join(path, n))
	}
	sort.Strings(files)
	return files, nil
}
