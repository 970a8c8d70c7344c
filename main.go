// Command nomad-driver-containerd is a Nomad task driver plugin that runs
// OCI and Docker images through containerd.
package main

import (
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
)

func main() {
	plugins.Serve(func(logger hclog.Logger) interface{} { return driver.New(logger) })
}
