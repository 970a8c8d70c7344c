package network

import (
	"testing"

	"github.com/shoenig/test/must"
)

func TestParseExtraHost(t *testing.T) {
	cases := []struct {
		in   string
		want HostEntry
		err  string
	}{
		{in: "db:10.0.0.5", want: HostEntry{"db", "10.0.0.5"}},
		{in: " db : 10.0.0.5 ", want: HostEntry{"db", "10.0.0.5"}},
		{in: "db.example.com:192.168.1.1", want: HostEntry{"db.example.com", "192.168.1.1"}},
		{in: "v6:::1", want: HostEntry{"v6", "::1"}},
		{in: "v6:2001:db8::10", want: HostEntry{"v6", "2001:db8::10"}},
		{in: "v6:[2001:db8::10]", want: HostEntry{"v6", "2001:db8::10"}},
		{in: "v6=2001:db8::10", want: HostEntry{"v6", "2001:db8::10"}},
		{in: "gw:host-gateway", want: HostEntry{"gw", HostGateway}},
		{in: "db", err: `extra_hosts: entry "db": want "name:ip"`},
		{in: ":10.0.0.5", err: "extra_hosts: entry \":10.0.0.5\": empty host name"},
		{in: "db:", err: "extra_hosts"},
		{in: "db:not-an-ip", err: `"not-an-ip" is not an IP address`},
		{in: "db:10.0.0.256", err: "extra_hosts"},
		{in: "my db:10.0.0.5", err: "whitespace"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseExtraHost(tc.in)
			if tc.err != "" {
				must.ErrorContains(t, err, tc.err)
				return
			}
			must.NoError(t, err)
			must.Eq(t, tc.want, got)
		})
	}
}

func TestResolveHostGateway(t *testing.T) {
	in := []HostEntry{{"a", "10.0.0.1"}, {"gw", HostGateway}}
	out, err := ResolveHostGateway(in, "172.31.0.1")
	must.NoError(t, err)
	must.Eq(t, []HostEntry{{"a", "10.0.0.1"}, {"gw", "172.31.0.1"}}, out)
	must.Eq(t, HostGateway, in[1].IP) // input untouched

	_, err = ResolveHostGateway(in, "")
	must.ErrorContains(t, err, "extra_hosts")
	out, err = ResolveHostGateway(in[:1], "")
	must.NoError(t, err)
	must.Len(t, 1, out)
}

const localhostLines = "127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"ff00::0\tip6-mcastprefix\n" +
	"ff02::1\tip6-allnodes\n" +
	"ff02::2\tip6-allrouters\n"

func TestHostsFile(t *testing.T) {
	cases := []struct {
		name, hostname, address string
		extra                   []HostEntry
		want                    string
	}{
		{name: "bare", want: localhostLines},
		{name: "hostname", hostname: "web", address: "172.31.0.5",
			want: localhostLines + "172.31.0.5\tweb\n"},
		{name: "fqdn", hostname: "web.example.com", address: "172.31.0.5",
			want: localhostLines + "172.31.0.5\tweb.example.com web\n"},
		{name: "no address", hostname: "web",
			want: localhostLines + "127.0.1.1\tweb\n"},
		{name: "address without hostname", address: "172.31.0.5", want: localhostLines},
		{name: "extra", hostname: "web", address: "10.1.1.1",
			extra: []HostEntry{{"db", "10.0.0.5"}, {"v6", "2001:db8::1"}},
			want:  localhostLines + "10.1.1.1\tweb\n10.0.0.5\tdb\n2001:db8::1\tv6\n"},
		{name: "extra only", extra: []HostEntry{{"db", "10.0.0.5"}},
			want: localhostLines + "10.0.0.5\tdb\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			must.Eq(t, tc.want, string(HostsFile(tc.hostname, tc.address, tc.extra)))
		})
	}
}
