package driver

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	goversion "github.com/hashicorp/go-version"
	"github.com/shoenig/test/must"
)

// Nomad's plugin loader refuses a plugin whose version is not semver.
func TestPluginInfoVersionIsSemver(t *testing.T) {
	info, err := New(hclog.NewNullLogger()).PluginInfo()
	must.NoError(t, err)
	_, err = goversion.NewSemver(info.PluginVersion)
	must.NoError(t, err, must.Sprintf("plugin version %q", info.PluginVersion))
}
