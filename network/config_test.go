package network

import (
	"encoding/json"
	"strings"
	"testing"

	cnilibrary "github.com/containernetworking/cni/libcni"
	"github.com/shoenig/test/must"
)

func TestDefaultConflist_Content(t *testing.T) {
	b, err := DefaultConflist("nomadctr0", "172.31.0.0/16")
	must.NoError(t, err)

	var got struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	must.NoError(t, json.Unmarshal(b, &got))
	must.Eq(t, "1.0.0", got.CNIVersion)
	must.Eq(t, "nomadctr0", got.Name)
	must.Len(t, 3, got.Plugins)

	br := got.Plugins[0]
	must.Eq(t, "bridge", br["type"])
	must.Eq(t, "nomadctr0", br["bridge"])
	must.Eq(t, true, br["isGateway"])
	must.Eq(t, true, br["ipMasq"])
	must.Eq(t, true, br["hairpinMode"])
	ipam := br["ipam"].(map[string]any)
	must.Eq(t, "host-local", ipam["type"])
	must.Eq[any](t, []any{[]any{map[string]any{"subnet": "172.31.0.0/16"}}}, ipam["ranges"])
	must.Eq[any](t, []any{map[string]any{"dst": "0.0.0.0/0"}}, ipam["routes"])

	pm := got.Plugins[1]
	must.Eq(t, "portmap", pm["type"])
	must.Eq[any](t, map[string]any{"portMappings": true}, pm["capabilities"])
	must.Eq(t, true, pm["snat"])

	fw := got.Plugins[2]
	must.Eq(t, "firewall", fw["type"])
	must.Eq(t, "iptables", fw["backend"])

	// libcni, which go-cni uses, accepts it
	list, err := cnilibrary.ConfListFromBytes(b)
	must.NoError(t, err)
	must.Eq(t, "nomadctr0", list.Name)
	must.Len(t, 3, list.Plugins)
}

func TestDefaultConflist_Invalid(t *testing.T) {
	cases := []struct {
		bridge, subnet, want string
	}{
		{"", "10.0.0.0/24", "cni.bridge_name"},
		{"abcdefghijklmnop", "10.0.0.0/24", "cni.bridge_name \"abcdefghijklmnop\": longer than 15"},
		{"bad name", "10.0.0.0/24", "cni.bridge_name \"bad name\": allowed are"},
		{"br/0", "10.0.0.0/24", "cni.bridge_name"},
		{"-br0", "10.0.0.0/24", "cni.bridge_name"},
		{"br0", "", "cni.subnet"},
		{"br0", "10.0.0.0", "cni.subnet \"10.0.0.0\": not a CIDR"},
		{"br0", "10.0.0.5/24", "host bits set, the network is 10.0.0.0/24"},
		{"br0", "fd00::/64", "must be an IPv4 network"},
		{"br0", "10.0.0.0/31", "no room"},
	}
	for _, tc := range cases {
		t.Run(tc.bridge+"_"+tc.subnet, func(t *testing.T) {
			_, err := DefaultConflist(tc.bridge, tc.subnet)
			must.ErrorContains(t, err, tc.want)
		})
	}
	_, err := DefaultConflist("abcdefghijklmno", "10.0.0.0/30") // 15 chars is fine
	must.NoError(t, err)
}

func TestNew_ConfigValidation(t *testing.T) {
	m, err := New(Config{}, nil)
	must.NoError(t, err)
	c := m.Config()
	must.Eq(t, []string{"/opt/cni/bin"}, c.BinDirs)
	must.Eq(t, "/etc/cni/net.d", c.ConfDir)
	must.Eq(t, "nomadctr0", c.BridgeName)
	must.Eq(t, "172.31.0.0/16", c.Subnet)
	must.Eq(t, "/var/run/netns", c.NetNSDir)

	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"relative bin dir", Config{BinDirs: []string{"opt/cni"}}, "cni.bin_dir \"opt/cni\""},
		{"empty bin dir", Config{BinDirs: []string{"/opt/cni/bin", ""}}, "cni.bin_dir"},
		{"relative conf dir", Config{ConfDir: "net.d"}, "cni.conf_dir \"net.d\""},
		{"relative netns dir", Config{NetNSDir: "netns"}, "cni.netns_dir"},
		{"bridge name", Config{BridgeName: "this-is-far-too-long"}, "cni.bridge_name"},
		{"subnet", Config{Subnet: "172.31.0.1/16"}, "cni.subnet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nil)
			must.ErrorContains(t, err, tc.want)
		})
	}
}

func TestContainerIDAndNetNSName(t *testing.T) {
	must.Eq(t, "web-1234", ContainerID("web-1234"))
	must.Eq(t, "nomad-web-1234", NetNSName("web-1234"))

	odd := ContainerID("my task/ü-1")
	must.StrHasPrefix(t, "my_task__-1-", odd)
	must.True(t, ifNameRe.MatchString(odd))
	must.NotEq(t, odd, ContainerID("my task/ä-1"))

	must.True(t, ifNameRe.MatchString(ContainerID("_x")))
	long := ContainerID(strings.Repeat("a", 300))
	must.LessEq(t, maxIDLen, len(long))
	must.True(t, ifNameRe.MatchString(long))
}
