package portmap

import (
	"strings"
	"testing"

	"github.com/hashicorp/nomad/nomad/structs"
)

// FuzzResolve feeds Resolve one allocated port and the task options that
// name it: it must never panic, every error line must name the option it
// is about, and every mapping it returns must be a valid one.
func FuzzResolve(f *testing.F) {
	f.Add("bridge", "http", 8080, 0, "", true, "8080")
	f.Add("bridge", "dns", 53, 5353, "127.0.0.1", false, "53/udp")
	f.Add("cni/web", "api", 20000, 80, "::1", true, "80-tcp")
	f.Add("host", "http", 8080, 0, "", true, "")
	f.Add("group", "http", 8080, 0, "", false, "8080")
	f.Add("bridge", "http", 0, -1, "", true, "0")
	f.Add("bridge", "http", 70000, 0, "10.0.0.1", true, "99999/TCP")
	f.Add("bridge", "", 1, 65536, "not-an-ip", false, "-udp")
	f.Fuzz(func(t *testing.T, mode, label string, value, to int, hostIP string, inPorts bool, portMap string) {
		req := Request{
			Mode:      mode,
			PortMaps:  decision(mode),
			Allocated: structs.AllocatedPorts{{Label: label, Value: value, To: to, HostIP: hostIP}},
		}
		if inPorts {
			req.Ports = []string{label, label + "x"}
		}
		if portMap != "" {
			req.PortMap = map[string]string{label: portMap}
		}
		res, err := Resolve(req)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "ports") && !strings.HasPrefix(line, "port_map") {
					t.Fatalf("error line %q does not name the option (ports or port_map)", line)
				}
			}
			return
		}
		for _, m := range res.Mappings {
			if m.HostPort < 1 || m.HostPort > maxPort || m.ContainerPort < 1 || m.ContainerPort > maxPort {
				t.Fatalf("mapping %+v has a port outside 1..%d", m, maxPort)
			}
			if m.Protocol != ProtocolTCP && m.Protocol != ProtocolUDP {
				t.Fatalf("mapping %+v has protocol %q", m, m.Protocol)
			}
		}
		for l, p := range res.PortMap {
			if p < 1 || p > maxPort {
				t.Fatalf("port map %s = %d", l, p)
			}
		}
	})
}

// decision is the driver's port-maps decision for the fuzzed mode name, so
// that the seeds for host and group reach the refusal paths.
func decision(mode string) PortMaps {
	switch mode {
	case "host", "none":
		return PortMapsRefused
	case "group":
		return PortMapsByNomad
	}
	return PortMapsAllowed
}
