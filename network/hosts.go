package network

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// HostGateway is the address docker's extra_hosts accepts in place of an IP:
// the task network's gateway (see ResolveHostGateway).
const HostGateway = "host-gateway"

// HostEntry is one extra /etc/hosts line.
type HostEntry struct{ Name, IP string }

// ParseExtraHost parses docker's extra_hosts form "name:ip" (the first colon
// separates, so "name:::1" and "name:[::1]" give IPv6) and "name=ip". IP may
// be HostGateway. Errors name the field extra_hosts.
func ParseExtraHost(s string) (HostEntry, error) {
	sep := strings.IndexAny(s, ":=") // the first of them: "name=::1" splits at '='
	if sep < 0 {
		return HostEntry{}, fmt.Errorf("extra_hosts: entry %q: want \"name:ip\"", s)
	}
	name, ip := strings.TrimSpace(s[:sep]), strings.TrimSpace(s[sep+1:])
	if name == "" {
		return HostEntry{}, fmt.Errorf("extra_hosts: entry %q: empty host name", s)
	}
	if strings.ContainsAny(name, " \t\r\n#") {
		return HostEntry{}, fmt.Errorf("extra_hosts: entry %q: host name %q holds whitespace or '#'", s, name)
	}
	if ip == HostGateway {
		return HostEntry{Name: name, IP: ip}, nil
	}
	if strings.HasPrefix(ip, "[") && strings.HasSuffix(ip, "]") {
		ip = ip[1 : len(ip)-1]
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return HostEntry{}, fmt.Errorf("extra_hosts: entry %q: %q is not an IP address or %q", s, ip, HostGateway)
	}
	return HostEntry{Name: name, IP: addr.String()}, nil
}

// ResolveHostGateway replaces HostGateway in entries with gateway; it fails
// when an entry needs it and gateway is empty.
func ResolveHostGateway(entries []HostEntry, gateway string) ([]HostEntry, error) {
	out := make([]HostEntry, len(entries))
	for i, e := range entries {
		if e.IP == HostGateway {
			if gateway == "" {
				return nil, fmt.Errorf("extra_hosts: entry %q: %s needs a task network with a gateway", e.Name+":"+e.IP, HostGateway)
			}
			e.IP = gateway
		}
		out[i] = e
	}
	return out, nil
}

// HostsFile renders a task's /etc/hosts: the localhost lines for IPv4 and
// IPv6 (as docker writes them), "<address>\t<hostname>" when hostname is set
// (with the short name too when hostname has dots; address "" means
// 127.0.1.1, Debian's convention), then the extra entries in order.
func HostsFile(hostname, address string, extra []HostEntry) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("ff00::0\tip6-mcastprefix\n")
	b.WriteString("ff02::1\tip6-allnodes\n")
	b.WriteString("ff02::2\tip6-allrouters\n")
	if hostname != "" {
		if address == "" {
			address = "127.0.1.1"
		}
		names := hostname
		if short, _, ok := strings.Cut(hostname, "."); ok && short != "" {
			names += " " + short
		}
		fmt.Fprintf(&b, "%s\t%s\n", address, names)
	}
	for _, e := range extra {
		fmt.Fprintf(&b, "%s\t%s\n", e.IP, e.Name)
	}
	return b.Bytes()
}
