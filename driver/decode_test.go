package driver

import (
	"testing"

	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	"github.com/shoenig/test/must"
)

// decodeHCL decodes a config block body through spec, defaults included,
// the way the Nomad agent does.
func decodeHCL[T any](t *testing.T, spec *hclspec.Spec, body string) T {
	t.Helper()
	var raw T
	hclutils.NewConfigParser(spec).ParseHCL(t, "config {\n"+body+"\n}", &raw)
	return raw
}

// decodePluginHCL decodes a plugin config body through the real schema.
func decodePluginHCL(t *testing.T, body string) rawConfig {
	t.Helper()
	return decodeHCL[rawConfig](t, configSpec, body)
}

// decodeTaskHCL decodes a task config body through the real schema.
func decodeTaskHCL(t *testing.T, body string) rawTaskConfig {
	t.Helper()
	return decodeHCL[rawTaskConfig](t, taskConfigSpec, body)
}

// parsed checks the error of a parse against a table case: where wantErr
// is set, err must contain it and parsed reports false, so that the case
// ends; otherwise err must be nil.
func parsed(t *testing.T, err error, wantErr string) bool {
	t.Helper()
	if wantErr != "" {
		must.ErrorContains(t, err, wantErr)
		return false
	}
	must.NoError(t, err)
	return true
}

// configCase parses a plugin config body and checks its error against
// wantErr (no error where it is empty); it returns the config, or nil where
// a table case ends.
func configCase(t *testing.T, body, wantErr string) *Config {
	t.Helper()
	c, err := parseConfig(decodePluginHCL(t, body))
	return caseResult(t, c, err, wantErr)
}

// taskCase is configCase for a task config body.
func taskCase(t *testing.T, body, wantErr string) *TaskConfig {
	t.Helper()
	tc, err := parseTaskConfig(decodeTaskHCL(t, body))
	return caseResult(t, tc, err, wantErr)
}

// caseResult checks err against wantErr as parsed does and returns v, or
// nil where the case ends; a parse that succeeds must give a value.
func caseResult[T any](t *testing.T, v *T, err error, wantErr string) *T {
	t.Helper()
	if !parsed(t, err, wantErr) {
		return nil
	}
	must.NotNil(t, v)
	return v
}
