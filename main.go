// Command nomad-driver-containerd is a Nomad task driver plugin that runs
// OCI and Docker images through containerd.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
)

func main() {
	showVersion := flag.Bool("version", false, "print the plugin version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Fprintf(os.Stdout, "nomad-driver-containerd %s\n", driver.Version)
		return
	}
	plugins.Serve(func(logger hclog.Logger) interface{} { return driver.New(logger) })
}
