// Package discover stands in for github.com/hashicorp/go-discover in the
// test bed's Nomad agent (hack/tools/nomad/go.mod replaces it). go-discover
// carries the SDKs of a dozen clouds for `retry_join = ["provider=..."]`,
// some 40% of the source the agent compiles; the test bed joins by address
// only, which Nomad handles without go-discover. A provider string fails
// with an error that says so.
package discover

import (
	"fmt"
	"log"
)

// Discover has the methods Nomad's agent calls on go-discover's type.
type Discover struct{}

// Addrs refuses every provider: none is built in.
func (d *Discover) Addrs(cfg string, _ *log.Logger) ([]string, error) {
	return nil, fmt.Errorf("failed to discover %q: this Nomad agent is built without cloud auto-join", cfg)
}

// Help says that no provider is built in.
func (d *Discover) Help() string {
	return "Cloud auto-join is not built into this agent; join by address.\n"
}

// Names lists the providers built in: none.
func (d *Discover) Names() []string { return nil }
