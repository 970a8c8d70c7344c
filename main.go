// Command nomad-driver-containerd is a Nomad task driver plugin that runs
// OCI and Docker images through containerd. `nomad-driver-containerd check`
// checks a client node for it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
	"github.com/nomad-containerd/nomad-driver-containerd/preflight"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		os.Exit(preflight.Main(context.Background(), os.Args[2:], os.Stdout, os.Stderr))
	}
	showVersion := flag.Bool("version", false, "print the plugin version and exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: nomad-driver-containerd [-version]  (Nomad starts it as a plugin)\n       %s\n", preflight.Usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	if *showVersion {
		fmt.Fprintf(os.Stdout, "nomad-driver-containerd %s\n", driver.Version)
		return
	}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, JSONFormat: true})
	driver.Serve(driver.New(logger), logger)
}
