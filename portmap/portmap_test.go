package portmap

import (
	"testing"

	gocni "github.com/containerd/go-cni"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/shoenig/test/must"
)

// alloc builds one group-network port as Nomad allocates it.
func alloc(label string, value, to int, hostIP string) structs.AllocatedPortMapping {
	return structs.AllocatedPortMapping{Label: label, Value: value, To: to, HostIP: hostIP}
}

// both is the tcp and udp mapping of one port, as an unqualified port gives.
func both(host, container int32, hostIP string) []gocni.PortMapping {
	return []gocni.PortMapping{
		{HostPort: host, ContainerPort: container, Protocol: "tcp", HostIP: hostIP},
		{HostPort: host, ContainerPort: container, Protocol: "udp", HostIP: hostIP},
	}
}

// one is a single-protocol mapping.
func one(host, container int32, proto, hostIP string) []gocni.PortMapping {
	return []gocni.PortMapping{{HostPort: host, ContainerPort: container, Protocol: proto, HostIP: hostIP}}
}

// cat joins mapping lists in order.
func cat(lists ...[]gocni.PortMapping) []gocni.PortMapping {
	out := []gocni.PortMapping{}
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// groupPorts is a typical group network: a dynamic port with `to`, a static
// port without, and one on a specific host IP.
var groupPorts = structs.AllocatedPorts{
	alloc("http", 25123, 8080, "10.0.0.5"),
	alloc("dns", 53, 0, "0.0.0.0"),
	alloc("metrics", 27000, -1, ""),
}

// legacy is a task-level network in the pre-0.12 form.
var legacy = structs.Networks{
	nil, // skipped
	{
		IP:            "192.168.1.10",
		ReservedPorts: []structs.Port{{Label: "ssh", Value: 2222}},
		DynamicPorts:  []structs.Port{{Label: "web", Value: 31000, To: 80}, {Label: "http", Value: 31001}},
	},
}

func TestResolve_Empty(t *testing.T) {
	for _, mode := range []string{"", "bridge", "cni/mynet", "host", "none", "group"} {
		t.Run(mode, func(t *testing.T) {
			res, err := Resolve(Request{Mode: mode, Allocated: groupPorts, Networks: legacy, PortMap: map[string]string{}})
			must.NoError(t, err)
			must.NotNil(t, res)
			must.NotNil(t, res.PortMap)
			must.MapEmpty(t, res.PortMap)
			must.NotNil(t, res.Mappings)
			must.SliceEmpty(t, res.Mappings)
		})
	}
}

func TestResolve_OK(t *testing.T) {
	cases := []struct {
		name    string
		req     Request
		expMaps []gocni.PortMapping
		expPM   map[string]int
	}{
		{
			name:    "dynamic port with to, host ip passed through",
			req:     Request{Mode: "bridge", Allocated: groupPorts, Ports: []string{"http"}},
			expMaps: both(25123, 8080, "10.0.0.5"),
			expPM:   map[string]int{"http": 8080},
		},
		{
			name:    "static port without to maps to the same number, 0.0.0.0 passed through",
			req:     Request{Mode: "bridge", Allocated: groupPorts, Ports: []string{"dns"}},
			expMaps: both(53, 53, "0.0.0.0"),
			expPM:   map[string]int{"dns": 53},
		},
		{
			name:    "to -1 means same as host, empty host ip stays empty",
			req:     Request{Mode: "cni/mynet", Allocated: groupPorts, Ports: []string{"metrics"}},
			expMaps: both(27000, 27000, ""),
			expPM:   map[string]int{"metrics": 27000},
		},
		{
			name:    "several ports sorted by label then protocol",
			req:     Request{Mode: "bridge", Allocated: groupPorts, Ports: []string{"metrics", "http", "dns"}},
			expMaps: cat(both(53, 53, "0.0.0.0"), both(25123, 8080, "10.0.0.5"), both(27000, 27000, "")),
			expPM:   map[string]int{"dns": 53, "http": 8080, "metrics": 27000},
		},
		{
			name:    "legacy networks: reserved and dynamic, host ip from the network",
			req:     Request{Mode: "bridge", Networks: legacy, Ports: []string{"ssh", "web"}},
			expMaps: cat(both(2222, 2222, "192.168.1.10"), both(31000, 80, "192.168.1.10")),
			expPM:   map[string]int{"ssh": 2222, "web": 80},
		},
		{
			name:    "allocated wins over legacy with the same label",
			req:     Request{Mode: "bridge", Allocated: groupPorts, Networks: legacy, Ports: []string{"http", "ssh"}},
			expMaps: cat(both(25123, 8080, "10.0.0.5"), both(2222, 2222, "192.168.1.10")),
			expPM:   map[string]int{"http": 8080, "ssh": 2222},
		},
		{
			name:    "port_map plain value maps both protocols and overrides to",
			req:     Request{Mode: "bridge", Allocated: groupPorts, PortMap: map[string]string{"http": "9090"}},
			expMaps: both(25123, 9090, "10.0.0.5"),
			expPM:   map[string]int{"http": 9090},
		},
		{
			name:    "port_map /tcp",
			req:     Request{Mode: "bridge", Allocated: groupPorts, PortMap: map[string]string{"http": "8080/tcp"}},
			expMaps: one(25123, 8080, "tcp", "10.0.0.5"),
			expPM:   map[string]int{"http": 8080},
		},
		{
			name:    "port_map /udp",
			req:     Request{Mode: "bridge", Allocated: groupPorts, PortMap: map[string]string{"dns": "5353/udp"}},
			expMaps: one(53, 5353, "udp", "0.0.0.0"),
			expPM:   map[string]int{"dns": 5353},
		},
		{
			name:    "port_map rkt -tcp",
			req:     Request{Mode: "bridge", Networks: legacy, PortMap: map[string]string{"ssh": "22-tcp"}},
			expMaps: one(2222, 22, "tcp", "192.168.1.10"),
			expPM:   map[string]int{"ssh": 22},
		},
		{
			name:    "port_map rkt -udp",
			req:     Request{Mode: "bridge", Allocated: groupPorts, PortMap: map[string]string{"dns": "53-udp"}},
			expMaps: one(53, 53, "udp", "0.0.0.0"),
			expPM:   map[string]int{"dns": 53},
		},
		{
			name:    "port_map protocol in upper case",
			req:     Request{Mode: "bridge", Allocated: groupPorts, PortMap: map[string]string{"http": "8080/TCP"}},
			expMaps: one(25123, 8080, "tcp", "10.0.0.5"),
			expPM:   map[string]int{"http": 8080},
		},
		{
			name: "port_map overrides a label also in ports; port_map label absent from ports is mapped",
			req: Request{Mode: "bridge", Allocated: groupPorts, Ports: []string{"http"},
				PortMap: map[string]string{"http": "81/udp", "metrics": "9100"}},
			expMaps: cat(one(25123, 81, "udp", "10.0.0.5"), both(27000, 9100, "")),
			expPM:   map[string]int{"http": 81, "metrics": 9100},
		},
		{
			name: "same host port on different host ips",
			req: Request{Mode: "bridge", Ports: []string{"a", "b"},
				Allocated: structs.AllocatedPorts{alloc("a", 80, 0, "10.0.0.1"), alloc("b", 80, 0, "10.0.0.2")}},
			expMaps: cat(both(80, 80, "10.0.0.1"), both(80, 80, "10.0.0.2")),
			expPM:   map[string]int{"a": 80, "b": 80},
		},
		{
			name: "same host port and ip on different protocols",
			req: Request{Mode: "bridge", PortMap: map[string]string{"a": "80/tcp", "b": "80-udp"},
				Allocated: structs.AllocatedPorts{alloc("a", 80, 0, ""), alloc("b", 80, 0, "")}},
			expMaps: cat(one(80, 80, "tcp", ""), one(80, 80, "udp", "")),
			expPM:   map[string]int{"a": 80, "b": 80},
		},
		{
			name: "ipv4 wildcard does not collide with an ipv6 address",
			req: Request{Mode: "bridge", Ports: []string{"a", "b"},
				Allocated: structs.AllocatedPorts{alloc("a", 80, 0, "0.0.0.0"), alloc("b", 80, 0, "fd00::1")}},
			expMaps: cat(both(80, 80, "0.0.0.0"), both(80, 80, "fd00::1")),
			expPM:   map[string]int{"a": 80, "b": 80},
		},
		{
			name: "first of two allocated ports with one label wins",
			req: Request{Mode: "bridge", Ports: []string{"x"},
				Allocated: structs.AllocatedPorts{alloc("x", 1000, 0, ""), alloc("x", 2000, 0, "")}},
			expMaps: both(1000, 1000, ""),
			expPM:   map[string]int{"x": 1000},
		},
		{
			name: "host ips that are not addresses compare as text",
			req: Request{Mode: "bridge", Ports: []string{"a", "b"},
				Allocated: structs.AllocatedPorts{alloc("a", 80, 0, "eth0"), alloc("b", 80, 0, "eth1")}},
			expMaps: cat(both(80, 80, "eth0"), both(80, 80, "eth1")),
			expPM:   map[string]int{"a": 80, "b": 80},
		},
		{
			name:    "port_map with max port",
			req:     Request{Mode: "bridge", Allocated: groupPorts, PortMap: map[string]string{"http": "65535"}},
			expMaps: both(25123, 65535, "10.0.0.5"),
			expPM:   map[string]int{"http": 65535},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Resolve(tc.req)
			must.NoError(t, err)
			must.Eq(t, tc.expMaps, res.Mappings)
			must.Eq(t, tc.expPM, res.PortMap)
		})
	}
}

func TestResolve_Errors(t *testing.T) {
	collide := func(a, b string) structs.AllocatedPorts {
		return structs.AllocatedPorts{alloc("a", 8000, 0, a), alloc("b", 8000, 0, b)}
	}
	cases := []struct {
		name string
		req  Request
		exp  []string // substrings the error must contain
	}{
		{
			name: "ports label unknown lists existing labels sorted",
			req:  Request{Mode: "bridge", Allocated: groupPorts, Networks: legacy, Ports: []string{"nope"}},
			exp: []string{`ports: label "nope" is not a port of the group or task network`,
				`"dns", "http", "metrics", "ssh", "web"`},
		},
		{
			name: "ports label unknown with no ports at all",
			req:  Request{Mode: "bridge", Ports: []string{"http"}},
			exp:  []string{`ports: label "http" is not a port`, "there are none"},
		},
		{
			name: "port_map label unknown",
			req:  Request{Mode: "bridge", Allocated: groupPorts, PortMap: map[string]string{"nope": "80"}},
			exp:  []string{`port_map: label "nope" is not a port`, `"dns", "http", "metrics"`},
		},
		{
			name: "ports in host mode",
			req:  Request{Mode: "host", PortMaps: PortMapsRefused, Allocated: groupPorts, Ports: []string{"http"}},
			exp:  []string{`ports: port maps are not allowed with network mode "host"`, `network_mode = "bridge" or "cni/<name>"`},
		},
		{
			name: "port_map in none mode",
			req:  Request{Mode: "none", PortMaps: PortMapsRefused, Allocated: groupPorts, PortMap: map[string]string{"http": "80"}},
			exp:  []string{`port_map: port maps are not allowed with network mode "none"`, `"cni/<name>"`},
		},
		{
			name: "both in group mode",
			req:  Request{Mode: "group", PortMaps: PortMapsByNomad, Allocated: groupPorts, Ports: []string{"http"}, PortMap: map[string]string{"http": "80"}},
			exp: []string{`ports and port_map: port maps are not allowed with network mode "group"`,
				"in group network mode Nomad maps the group's ports itself"},
		},
		{
			name: "label listed twice in ports",
			req:  Request{Mode: "bridge", Allocated: groupPorts, Ports: []string{"http", "dns", "http"}},
			exp:  []string{`ports: label "http" is listed twice`},
		},
		{
			name: "same host ip, port and protocol",
			req:  Request{Mode: "bridge", Allocated: collide("10.0.0.1", "10.0.0.1"), Ports: []string{"a", "b"}},
			exp: []string{`ports: labels "a" and "b" both map host port 8000/tcp on host IP 10.0.0.1`,
				`"a" and "b" both map host port 8000/udp`},
		},
		{
			name: "empty host ip collides with a specific one",
			req:  Request{Mode: "bridge", Allocated: collide("", "10.0.0.1"), Ports: []string{"a", "b"}},
			exp:  []string{`labels "a" and "b" both map host port 8000/tcp on host IP 10.0.0.1`},
		},
		{
			name: "0.0.0.0 collides with a specific ipv4",
			req:  Request{Mode: "bridge", Allocated: collide("10.0.0.1", "0.0.0.0"), Ports: []string{"a", "b"}},
			exp:  []string{`both map host port 8000/tcp on host IP 0.0.0.0`},
		},
		{
			name: "two empty host ips collide",
			req:  Request{Mode: "bridge", Allocated: collide("", ""), PortMap: map[string]string{"a": "1/udp", "b": "2-udp"}},
			exp:  []string{`port_map: labels "a" and "b" both map host port 8000/udp on host IP (all)`},
		},
		{
			name: "legacy ports collide",
			req: Request{Mode: "bridge", Ports: []string{"x", "y"}, Networks: structs.Networks{{IP: "10.1.1.1",
				ReservedPorts: []structs.Port{{Label: "x", Value: 5000}}, DynamicPorts: []structs.Port{{Label: "y", Value: 5000, To: 80}}}}},
			exp: []string{`labels "x" and "y" both map host port 5000/tcp on host IP 10.1.1.1`},
		},
		{
			name: "host port zero",
			req:  Request{Mode: "bridge", Allocated: structs.AllocatedPorts{alloc("http", 0, 80, "")}, Ports: []string{"http"}},
			exp:  []string{`ports: label "http" has host port 0, which is outside 1..65535`},
		},
		{
			name: "host port too large via port_map",
			req:  Request{Mode: "bridge", Allocated: structs.AllocatedPorts{alloc("http", 70000, 0, "")}, PortMap: map[string]string{"http": "80"}},
			exp:  []string{`port_map: label "http" has host port 70000, which is outside 1..65535`},
		},
		{
			name: "container port (to) too large",
			req:  Request{Mode: "bridge", Allocated: structs.AllocatedPorts{alloc("http", 8080, 70000, "")}, Ports: []string{"http"}},
			exp:  []string{`ports: label "http" has container port (to) 70000, which is outside 1..65535`},
		},
		{
			name: "all problems are reported",
			req:  Request{Mode: "bridge", Allocated: groupPorts, Ports: []string{"a", "b"}, PortMap: map[string]string{"c": "80"}},
			exp:  []string{`ports: label "a"`, `ports: label "b"`, `port_map: label "c"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Resolve(tc.req)
			must.Error(t, err)
			must.Nil(t, res)
			for _, sub := range tc.exp {
				must.ErrorContains(t, err, sub)
			}
		})
	}
}

func TestResolve_BadPortMapValues(t *testing.T) {
	cases := map[string]string{
		"http":                 "not a port number",
		"80/sctp":              `protocol "sctp" is not supported`,
		"80-sctp":              `protocol "sctp" is not supported`,
		"-1":                   "not a port number",
		"70000":                "port out of range",
		"0":                    "port out of range",
		"99999999999999999999": "port out of range",
		"":                     "not a port number",
		"/tcp":                 "not a port number",
		"8080/":                "missing protocol",
		"8080-":                "missing protocol",
		"+80":                  "not a port number",
		" 80":                  "not a port number",
		"80/tcp/udp":           `protocol "tcp/udp" is not supported`,
	}
	for value, why := range cases {
		t.Run(value, func(t *testing.T) {
			res, err := Resolve(Request{Mode: "bridge", Allocated: groupPorts, PortMap: map[string]string{"http": value}})
			must.Nil(t, res)
			must.ErrorContains(t, err, `port_map: label "http": value "`+value+`" is not valid: `+why)
			must.ErrorContains(t, err, `want a container port 1..65535, optionally followed by "/tcp", "/udp", "-tcp" or "-udp"`)
		})
	}
}
