package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const hostResolvConf = "/etc/resolv.conf"

// networkFiles writes the task's /etc/hosts and /etc/resolv.conf into its
// task directory (never into the container image and never a host file
// bound writable) and returns the mounts for them. In Nomad's group network
// the hostname maps to the address Nomad gave the group.
func networkFiles(cfg *drivers.TaskConfig, tc *TaskConfig) ([]specs.Mount, error) {
	dir := cfg.TaskDir().Dir
	address := "127.0.1.1"
	if iso := cfg.NetworkIsolation; iso != nil && iso.HostsConfig != nil && iso.HostsConfig.Address != "" {
		address = iso.HostsConfig.Address
	}
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte(hostsFile(hostname(cfg, tc), address)), 0o644); err != nil {
		return nil, fmt.Errorf("failed to write hosts file: %w", err)
	}
	ms := []specs.Mount{bindMount(hosts, "/etc/hosts", false)}
	resolv, err := os.ReadFile(hostResolvConf)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("failed to read %s: %w", hostResolvConf, err)
	}
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, resolv, 0o644); err != nil {
		return nil, fmt.Errorf("failed to write resolv.conf: %w", err)
	}
	return append(ms, bindMount(p, "/etc/resolv.conf", false)), nil
}

func hostsFile(name, address string) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if name != "" {
		fmt.Fprintf(&b, "%s\t%s\n", address, name)
	}
	return b.String()
}
