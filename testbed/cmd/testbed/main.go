// Command testbed runs pieces of the test bed outside of tests, for the
// Makefile and the demo scripts.
//
//	testbed push-busybox -registry 127.0.0.1:PORT -ref demo/busybox:1
//	    builds the busybox image, pushes it, prints its digest
//	testbed up -dir .work/demo [-plugin-dir bin] [-ref demo/busybox:1]
//	    starts containerd, a registry with the busybox image and a Nomad
//	    agent with the plugin, all detached with PID files in their dirs,
//	    and prints shell assignments (CONTAINERD_ADDRESS, REGISTRY, IMAGE,
//	    NOMAD_ADDR, NOMAD_MARKER)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "push-busybox":
		err = pushBusybox(os.Args[2:])
	case "up":
		err = up(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: testbed push-busybox -registry HOST:PORT -ref NAME:TAG\n"+
		"       testbed up -dir DIR [-plugin-dir DIR] [-ref NAME:TAG]")
	os.Exit(2)
}

func pushBusybox(args []string) error {
	fs := flag.NewFlagSet("push-busybox", flag.ExitOnError)
	host := fs.String("registry", "", "registry host:port (plain HTTP)")
	ref := fs.String("ref", "demo/busybox:1", "repository and tag")
	_ = fs.Parse(args)
	if *host == "" {
		return fmt.Errorf("push-busybox: -registry is required")
	}
	dgst, err := push(*host, *ref)
	if err != nil {
		return err
	}
	fmt.Println(dgst)
	return nil
}

func push(host, ref string) (string, error) {
	img, err := testbed.BuildBusybox()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dgst, err := img.Push(ctx, host, ref)
	return dgst.String(), err
}

// The demo's bridge network: outside the ranges tests draw from
// (10.215.0.0/16) and unlike the driver's default, so that it never meets
// an operator's own.
const (
	demoBridge = "ndcdemo0"
	demoSubnet = "10.216.0.0/24"
)

func up(args []string) (err error) {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for the daemons' files")
	pluginDir := fs.String("plugin-dir", filepath.Join(testbed.RepoRoot(), "bin"), "directory holding "+testbed.PluginBinary)
	ref := fs.String("ref", "demo/busybox:1", "repository and tag of the pushed busybox image")
	_ = fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("up: -dir is required")
	}
	opts := func(name string) testbed.LaunchOptions {
		return testbed.LaunchOptions{Dir: filepath.Join(*dir, name), Detach: true}
	}
	var stops []func() error
	defer func() {
		if err != nil {
			for i := len(stops) - 1; i >= 0; i-- {
				_ = stops[i]()
			}
		}
	}()

	cd, err := testbed.LaunchContainerd(opts("containerd"))
	if err != nil {
		return err
	}
	stops = append(stops, cd.Stop)
	reg, err := testbed.LaunchRegistry(opts("registry"), testbed.RegistryOptions{})
	if err != nil {
		return err
	}
	stops = append(stops, reg.Stop)
	if _, err := push(reg.Host, *ref); err != nil {
		return err
	}
	// the driver's built-in bridge network, on a bridge and subnet of the
	// demo's own, with the plugins `make deps` built
	cni := &testbed.CNINet{ConfDir: filepath.Join(*dir, "cni"), BinDir: testbed.CNIBinDir(), Bridge: demoBridge, Subnet: demoSubnet}
	if err := os.MkdirAll(cni.ConfDir, 0o755); err != nil {
		return err
	}
	n, err := testbed.LaunchNomad(testbed.NomadConfig{
		PluginDir:    *pluginDir,
		PluginConfig: testbed.ContainerdPluginConfig(cd) + cni.PluginBlock(filepath.Join(*dir, "netns")),
	}, opts("nomad"))
	if err != nil {
		return err
	}
	for _, kv := range [][2]string{
		{"CONTAINERD_ADDRESS", cd.Address},
		{"REGISTRY", reg.Host},
		{"IMAGE", reg.Host + "/" + *ref},
		{"NOMAD_ADDR", n.Addr},
		{"NOMAD_MARKER", n.Marker()},
		{"CNI_BRIDGE", demoBridge},
	} {
		fmt.Printf("%s=%q\n", kv[0], kv[1])
	}
	return nil
}
