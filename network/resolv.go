package network

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
)

// Host resolv.conf files read by HostResolvConf.
var (
	hostResolvConf     = "/etc/resolv.conf"
	resolvedResolvConf = "/run/systemd/resolve/resolv.conf" // systemd-resolved's upstream servers
)

// ResolvConf renders a task's /etc/resolv.conf for a task that shares the
// host's network namespace: ResolvConfForNetNS(base, override, false).
func ResolvConf(base []byte, override DNS) []byte {
	return ResolvConfForNetNS(base, override, false)
}

// ResolvConfForNetNS renders a task's /etc/resolv.conf from base (the host's
// resolv.conf, or empty) and override: each non-empty override field
// replaces the base's nameserver, search (and domain) or options lines.
// Other directives of base are kept, comments dropped. With ownNetNS (the
// task has a network namespace of its own) the base's loopback nameservers
// (127.0.0.0/8, ::1) are dropped, since they are not reachable from there;
// override servers are always kept as given. No public resolver is ever
// added: with no nameserver left the file has none.
func ResolvConfForNetNS(base []byte, override DNS, ownNetNS bool) []byte {
	rc := parseResolvConf(base)
	servers := override.Servers
	if len(servers) == 0 {
		for _, s := range rc.servers {
			if ownNetNS && isLoopback(s) {
				continue
			}
			servers = append(servers, s)
		}
	}
	searches := rc.searches
	if len(override.Searches) > 0 {
		searches = override.Searches
	}
	options := rc.options
	if len(override.Options) > 0 {
		options = override.Options
	}

	var b bytes.Buffer
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(searches, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	for _, l := range rc.other {
		b.WriteString(l + "\n")
	}
	return b.Bytes()
}

type resolvConf struct {
	servers, searches, options, other []string
}

// parseResolvConf reads the directives resolv.conf(5) defines; the last
// search or domain line wins, options accumulate.
func parseResolvConf(b []byte) resolvConf {
	var rc resolvConf
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		f := strings.Fields(line)
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				rc.servers = append(rc.servers, f[1])
			}
		case "search":
			rc.searches = append([]string(nil), f[1:]...)
		case "domain":
			rc.searches = append([]string(nil), f[1:min(len(f), 2)]...)
		case "options":
			rc.options = append(rc.options, f[1:]...)
		default:
			rc.other = append(rc.other, line)
		}
	}
	return rc
}

// isLoopback reports whether a nameserver address is on loopback.
func isLoopback(s string) bool {
	if i := strings.IndexByte(s, '%'); i >= 0 {
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Unmap().IsLoopback()
}

// HostResolvConf reads the host's resolv.conf as the base for a task's.
// For a task in its own netns, when every host nameserver is on loopback
// (a local stub such as systemd-resolved's 127.0.0.53), it reads
// systemd-resolved's list of upstream servers instead, if there is one.
func HostResolvConf(ownNetNS bool) ([]byte, error) {
	b, err := os.ReadFile(hostResolvConf)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("failed to read %s: %w", hostResolvConf, err)
	}
	if !ownNetNS {
		return b, nil
	}
	rc := parseResolvConf(b)
	for _, s := range rc.servers {
		if !isLoopback(s) {
			return b, nil
		}
	}
	if len(rc.servers) == 0 {
		return b, nil
	}
	up, err := os.ReadFile(resolvedResolvConf)
	if err != nil {
		return b, nil //nolint:nilerr // no systemd-resolved: keep the host's file
	}
	return up, nil
}
