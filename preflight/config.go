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
	Plugins []*pluginBlock `hcl:"plugin"`
}

type pluginBlock struct {
	Name   string         `hcl:",key"`
	Config map[string]any `hcl:"config"`
}

// checkConfig reads the plugin block from the agent config at path and
// validates it exactly as the agent and the driver would.
func checkConfig(path string) (*config, Result) {
	res := Result{Name: "config"}
	block, src, err := loadPluginConfig(path)
	if err != nil {
		res.Status, res.Detail = Fail, err.Error()
		res.Fix = "give -config the Nomad agent's config file or directory"
		return nil, res
	}
	conf, err := ValidateConfig(block)
	if err != nil {
		res.Status, res.Detail = Fail, fmt.Sprintf("%s: %v", src, err)
		res.Fix = fmt.Sprintf("correct the plugin %q block; the options are in the README's plugin configuration table", pluginName)
		return nil, res
	}
	res.Status, res.Detail = Pass, fmt.Sprintf("%s: plugin %q config is valid", src, pluginName)
	return conf, res
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

// loadPluginConfig returns the config of the plugin "containerd" block in
// the agent config at path (a file, or a directory whose .hcl and .json
// files the agent reads in name order, a later block replacing an earlier
// one) and where it was found. No block means the defaults (nil map), as
// for an agent that loads the plugin without one.
func loadPluginConfig(path string) (map[string]any, string, error) {
	if path == "" {
		return nil, "defaults (no -config given)", nil
	}
	files, err := configFiles(path)
	if err != nil {
		return nil, "", err
	}
	var (
		found map[string]any
		src   = fmt.Sprintf("%s (no plugin %q block: the defaults apply)", path, pluginName)
	)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", fmt.Errorf("failed to read agent config: %w", err)
		}
		var af agentFile
		if err := hcl.Decode(&af, string(b)); err != nil {
			return nil, "", fmt.Errorf("failed to parse agent config %s: %w", f, err)
		}
		for _, p := range af.Plugins {
			if p != nil && p.Name == pluginName {
				found, src = p.Config, f
			}
		}
	}
	return found, src, nil
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
