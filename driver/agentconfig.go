package driver

import (
	"fmt"
	"strings"

	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/zclconf/go-cty/cty/msgpack"
)

// DecodeConfig decodes and validates the plugin config as SetConfig
// receives it (msgpack), with SetConfig's error messages.
func DecodeConfig(pluginConfig []byte) (*Config, error) {
	var raw rawConfig
	if len(pluginConfig) != 0 {
		if err := base.MsgPackDecode(pluginConfig, &raw); err != nil {
			return nil, fmt.Errorf("failed to decode plugin config: %w", err)
		}
	}
	conf, err := parseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid plugin config: %w", err)
	}
	return conf, nil
}

// EncodeAgentConfig turns the config of a plugin block, as the Nomad
// agent's HCL parser hands it over (nil for no config block), into what
// SetConfig receives: decoded through ConfigSchema, defaults applied, and
// msgpack encoded, the steps of Nomad's plugin loader. A schema error (an
// unknown option, a value of the wrong type) names the option.
func EncodeAgentConfig(config map[string]any) ([]byte, error) {
	spec, diags := hclspecutils.Convert(configSpec)
	if diags.HasErrors() {
		return nil, fmt.Errorf("failed to convert the config schema: %s", diags.Error())
	}
	if config == nil {
		config = map[string]any{}
	}
	val, diags, errs := hclutils.ParseHclInterface(config, spec, nil)
	if diags.HasErrors() {
		msgs := make([]string, 0, len(errs))
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		return nil, fmt.Errorf("failed to parse config: %s", strings.Join(msgs, "; "))
	}
	b, err := msgpack.Marshal(val, val.Type())
	if err != nil {
		return nil, fmt.Errorf("failed to encode config: %w", err)
	}
	return b, nil
}
