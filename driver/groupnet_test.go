package driver

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
)

// Nomad learns from the capabilities whether the driver makes group
// network namespaces; create_group_network = false leaves them to Nomad,
// and the log collection setting is kept beside it.
func TestCapabilities_GroupNetwork(t *testing.T) {
	for _, tc := range []struct {
		name, hcl      string
		initiate, logs bool
	}{
		{"default", "", true, true},
		{"left to Nomad", "create_group_network = false", false, true},
		{"logmon", "logging {\n collector = \"nomad\"\n}", true, false},
		{"left to Nomad, driver logs", "create_group_network = false\nlogging {\n collector = \"driver\"\n}", false, true},
		{"driver logs", "logging {\n collector = \"driver\"\n}", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(hclog.NewNullLogger())
			caps, err := d.Capabilities()
			must.NoError(t, err)
			must.True(t, caps.MustInitiateNetwork, must.Sprint("before SetConfig"))
			c, err := parseConfig(decodePluginHCL(t, tc.hcl))
			must.NoError(t, err)
			d.st = &state{config: c}
			caps, err = d.Capabilities()
			must.NoError(t, err)
			must.Eq(t, tc.initiate, caps.MustInitiateNetwork)
			must.Eq(t, tc.logs, caps.DisableLogCollection)
			must.True(t, caps.SendSignals)
		})
	}
}
