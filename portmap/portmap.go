// Package portmap turns the ports Nomad allocated to a task, together with
// the task's `ports` and `port_map` options, into CNI port mappings and the
// label -> container port map that goes back to Nomad in a DriverNetwork.
//
// It follows Nomad's docker driver: `ports = ["http"]` maps an allocated port
// to its `to` value (or to the same number), `port_map { http = "8080" }`
// names the container port explicitly (rkt's form), and a port given without
// a protocol is mapped for both tcp and udp.
//
// The package is pure: it does no I/O and keeps no state.
package portmap

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	gocni "github.com/containerd/go-cni"
	"github.com/hashicorp/nomad/nomad/structs"
)

// PortMaps is the caller's decision whether the task's network mode takes
// port maps from the driver; portmap does not know the modes themselves.
type PortMaps int

const (
	// PortMapsAllowed: the driver sets up the task's network and maps ports.
	PortMapsAllowed PortMaps = iota
	// PortMapsRefused: the mode has no network the driver could map ports
	// into (the host's namespace, loopback only).
	PortMapsRefused
	// PortMapsByNomad: the task is in Nomad's group network namespace and
	// Nomad maps the group's ports itself.
	PortMapsByNomad
)

// Protocols a port can be mapped for.
const (
	ProtocolTCP = "tcp"
	ProtocolUDP = "udp"
)

// maxPort is the largest valid TCP/UDP port number.
const maxPort = 65535

// Request is everything Resolve needs: whether the network mode takes port
// maps, the ports Nomad allocated and the task's port options.
type Request struct {
	Mode      string                 // name of the resolved network mode, used only for the "not allowed here" error
	PortMaps  PortMaps               // whether that mode takes port maps
	Allocated structs.AllocatedPorts // cfg.Resources.Ports from Nomad (group network ports); may be nil
	Networks  structs.Networks       // legacy task-level networks: cfg.Resources.NomadResources.Networks; may be nil
	Ports     []string               // task config `ports = ["http", "dns"]` (docker driver form)
	PortMap   map[string]string      // task config `port_map { http = 8080 }` flattened: label -> value
}

// Result is the outcome of Resolve.
type Result struct {
	// Mappings is the value for CNI's portMappings capability argument,
	// sorted by label, then protocol. Never nil.
	Mappings []gocni.PortMapping
	// PortMap maps each mapped label to its container port, for
	// drivers.DriverNetwork.PortMap. Never nil.
	PortMap map[string]int
}

// hostPort is one port Nomad allocated, whatever structure it came from.
type hostPort struct {
	value  int    // host port
	to     int    // container port; <= 0 means the same as value
	hostIP string // host IP to bind; empty means all
}

// wanted is one label the task asked to map, with the options that apply.
type wanted struct {
	label     string
	field     string   // "ports" or "port_map": the option that named it
	container int      // container port from port_map; 0 when not given
	protocols []string // protocols to map
}

// Resolve validates the task's `ports` and `port_map` options against the
// allocated ports and returns the port mappings to set up. A request with
// neither option yields an empty Result in any mode. Every problem found is
// reported, each naming the option, the value and what is allowed.
func Resolve(req Request) (*Result, error) {
	res := &Result{Mappings: []gocni.PortMapping{}, PortMap: map[string]int{}}
	if len(req.Ports) == 0 && len(req.PortMap) == 0 {
		return res, nil
	}
	if err := checkMode(req); err != nil {
		return nil, err
	}

	avail := available(req.Allocated, req.Networks)
	want, errs := collect(req, avail)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	var owners []wanted // owners[i] asked for res.Mappings[i]
	for _, w := range want {
		hp := avail[w.label]
		if hp.value < 1 || hp.value > maxPort {
			errs = append(errs, fmt.Errorf("%s: label %q has host port %d, which is outside 1..%d; check the port in the network block", w.field, w.label, hp.value, maxPort))
			continue
		}
		container := w.container
		if container == 0 {
			container = hp.value
			if hp.to > 0 {
				container = hp.to
			}
		}
		if container > maxPort {
			errs = append(errs, fmt.Errorf("%s: label %q has container port (to) %d, which is outside 1..%d; check the port's \"to\" in the network block", w.field, w.label, container, maxPort))
			continue
		}
		res.PortMap[w.label] = container
		for _, proto := range w.protocols {
			res.Mappings = append(res.Mappings, gocni.PortMapping{
				HostPort:      int32(hp.value),
				ContainerPort: int32(container),
				Protocol:      proto,
				HostIP:        hp.hostIP,
			})
			owners = append(owners, w)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := checkCollisions(res.Mappings, owners); err != nil {
		return nil, err
	}
	return res, nil
}

// checkMode refuses port options in network modes where the driver does not
// map ports.
func checkMode(req Request) error {
	if req.PortMaps == PortMapsAllowed {
		return nil
	}
	var fields []string
	if len(req.Ports) > 0 {
		fields = append(fields, "ports")
	}
	if len(req.PortMap) > 0 {
		fields = append(fields, "port_map")
	}
	msg := fmt.Sprintf("%s: port maps are not allowed with network mode %q; they need network_mode = \"bridge\" or \"cni/<name>\"",
		strings.Join(fields, " and "), req.Mode)
	if req.PortMaps == PortMapsByNomad {
		msg += "; in group network mode Nomad maps the group's ports itself (network block in the group), so remove the option"
	}
	return errors.New(msg)
}

// available indexes the allocated ports by label. Ports from the group
// network (allocated) win over legacy task networks with the same label;
// among legacy networks the first occurrence wins.
func available(allocated structs.AllocatedPorts, networks structs.Networks) map[string]hostPort {
	avail := make(map[string]hostPort)
	for _, p := range allocated {
		if _, ok := avail[p.Label]; ok {
			continue
		}
		avail[p.Label] = hostPort{value: p.Value, to: p.To, hostIP: p.HostIP}
	}
	for _, n := range networks {
		if n == nil {
			continue
		}
		for _, ports := range [][]structs.Port{n.ReservedPorts, n.DynamicPorts} {
			for _, p := range ports {
				if _, ok := avail[p.Label]; ok {
					continue
				}
				avail[p.Label] = hostPort{value: p.Value, to: p.To, hostIP: n.IP}
			}
		}
	}
	return avail
}

// collect checks every label named in `ports` and `port_map` and returns the
// labels to map, sorted, with the protocols and container ports asked for.
func collect(req Request, avail map[string]hostPort) ([]wanted, []error) {
	var errs []error
	byLabel := make(map[string]*wanted)
	seen := make(map[string]bool, len(req.Ports))
	for _, label := range req.Ports {
		if seen[label] {
			errs = append(errs, fmt.Errorf("ports: label %q is listed twice; list each port label once", label))
			continue
		}
		seen[label] = true
		if _, ok := avail[label]; !ok {
			errs = append(errs, unknownLabel("ports", label, avail))
			continue
		}
		byLabel[label] = &wanted{label: label, field: "ports", protocols: []string{ProtocolTCP, ProtocolUDP}}
	}

	labels := make([]string, 0, len(req.PortMap))
	for label := range req.PortMap {
		labels = append(labels, label)
	}
	sort.Strings(labels)
	for _, label := range labels {
		value := req.PortMap[label]
		if _, ok := avail[label]; !ok {
			errs = append(errs, unknownLabel("port_map", label, avail))
			continue
		}
		port, protos, err := parsePortMapValue(value)
		if err != nil {
			errs = append(errs, fmt.Errorf("port_map: label %q: %w", label, err))
			continue
		}
		byLabel[label] = &wanted{label: label, field: "port_map", container: port, protocols: protos}
	}

	want := make([]wanted, 0, len(byLabel))
	for _, w := range byLabel {
		want = append(want, *w)
	}
	sort.Slice(want, func(i, j int) bool { return want[i].label < want[j].label })
	return want, errs
}

// unknownLabel is the error for a label that no allocated port has.
func unknownLabel(field, label string, avail map[string]hostPort) error {
	labels := make([]string, 0, len(avail))
	for l := range avail {
		labels = append(labels, strconv.Quote(l))
	}
	sort.Strings(labels)
	exist := "there are none; add a port to the network block"
	if len(labels) > 0 {
		exist = "the ports that exist are " + strings.Join(labels, ", ")
	}
	return fmt.Errorf("%s: label %q is not a port of the group or task network; %s", field, label, exist)
}

// parsePortMapValue parses a port_map value: "8080", "8080/tcp", "8080/udp",
// "8080-tcp" or "8080-udp" (rkt). It returns the container port and the
// protocols to map. The protocol is matched without regard to case.
func parsePortMapValue(value string) (int, []string, error) {
	bad := func(why string) error {
		return fmt.Errorf("value %q is not valid: %s; want a container port 1..%d, optionally followed by \"/tcp\", \"/udp\", \"-tcp\" or \"-udp\"", value, why, maxPort)
	}
	num, proto := value, ""
	if i := strings.IndexAny(value, "/-"); i >= 0 {
		num, proto = value[:i], value[i+1:]
		if num == "" {
			return 0, nil, bad("not a port number")
		}
	}
	protos := []string{ProtocolTCP, ProtocolUDP}
	switch strings.ToLower(proto) {
	case "":
		if num != value {
			return 0, nil, bad("missing protocol")
		}
	case ProtocolTCP:
		protos = []string{ProtocolTCP}
	case ProtocolUDP:
		protos = []string{ProtocolUDP}
	default:
		return 0, nil, bad(fmt.Sprintf("protocol %q is not supported", proto))
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, nil, bad("not a port number")
	}
	port, err := strconv.Atoi(num)
	if err != nil || port < 1 || port > maxPort {
		return 0, nil, bad("port out of range")
	}
	return port, protos, nil
}

// checkCollisions refuses two mappings of the same host port and protocol on
// overlapping host IPs; owners[i] is the label that asked for mappings[i].
func checkCollisions(mappings []gocni.PortMapping, owners []wanted) error {
	var errs []error
	for i := range mappings {
		for j := 0; j < i; j++ {
			a, b := mappings[j], mappings[i]
			if a.HostPort != b.HostPort || a.Protocol != b.Protocol || !sameHost(a.HostIP, b.HostIP) {
				continue
			}
			errs = append(errs, fmt.Errorf("%s: labels %q and %q both map host port %d/%s on host IP %s; each host IP, port and protocol can be mapped only once",
				owners[i].field, owners[j].label, owners[i].label, b.HostPort, b.Protocol, describeIP(b.HostIP)))
			break
		}
	}
	return errors.Join(errs...)
}

// sameHost reports whether two host IPs overlap: they are equal, or one of
// them binds every address (empty: all; "0.0.0.0": all IPv4; "::": all IPv6)
// of the other's family.
func sameHost(a, b string) bool {
	if a == b || a == "" || b == "" {
		return true
	}
	pa, errA := netip.ParseAddr(a)
	pb, errB := netip.ParseAddr(b)
	if errA != nil || errB != nil {
		return false
	}
	pa, pb = pa.Unmap(), pb.Unmap()
	if pa.Is4() != pb.Is4() {
		return false
	}
	return pa == pb || pa.IsUnspecified() || pb.IsUnspecified()
}

// describeIP renders a host IP for an error message.
func describeIP(ip string) string {
	if ip == "" {
		return "(all)"
	}
	return ip
}
