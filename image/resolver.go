package image

import (
	"context"
	"net"
	"net/url"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
)

// newResolver returns containerd's docker resolver for one pull of an image
// whose reference names registry refHost. Hosts come from the hosts.toml
// tree in hostsDir when set; otherwise containerd's defaults apply: HTTPS
// everywhere, plain HTTP only for loopback registries (localhost, 127.0.0.0/8,
// ::1), which are tried over HTTPS first.
func newResolver(ctx context.Context, hostsDir, refHost string, auth *Auth) remotes.Resolver {
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: registryHosts(ctx, hostsDir, refHost, auth),
	})
}

func registryHosts(ctx context.Context, hostsDir, refHost string, auth *Auth) docker.RegistryHosts {
	opts := hostOptions(hostsDir)
	// Always set, so that a registry asking for basic auth without
	// credentials fails as an authorization error.
	opts.Credentials = credentialsFor(auth, refHost, endpoints(ctx, hostsDir, refHost))
	return config.ConfigureHosts(ctx, opts)
}

func hostOptions(hostsDir string) config.HostOptions {
	var opts config.HostOptions
	if hostsDir != "" {
		opts.HostDir = config.HostDirFromRoot(hostsDir)
	}
	return opts
}

// endpoints are the hosts configured for registry refHost: mirrors and
// servers from the hosts.toml tree, or containerd's default for it. An
// error here (a bad hosts.toml) comes back from the pull itself.
func endpoints(ctx context.Context, hostsDir, refHost string) []string {
	var hosts []string
	if rh, err := config.ConfigureHosts(ctx, hostOptions(hostsDir))(refHost); err == nil {
		for _, h := range rh {
			hosts = append(hosts, h.Host)
		}
	}
	return hosts
}

// credentialsFor returns the credential callback of the resolver, which is
// asked with the host a request goes to. Credentials are for one registry:
// auth.ServerAddress, or the image's registry refHost when that is empty.
// They are handed to that registry's own host and, when it is the image's
// registry, to the endpoints configured for it (endpoints: mirrors and
// servers from the operator's hosts.toml, "registry-1.docker.io" for Docker
// Hub). Any other host gets anonymous access.
func credentialsFor(auth *Auth, refHost string, endpoints []string) func(host string) (string, string, error) {
	if auth == nil || (auth.Username == "" && auth.Password == "") {
		return func(string) (string, string, error) { return "", "", nil }
	}
	registry := canonicalHost(auth.ServerAddress)
	if registry == "" {
		registry = canonicalHost(refHost)
	}
	allowed := map[string]bool{registry: true}
	if registry == canonicalHost(refHost) {
		for _, e := range endpoints {
			allowed[canonicalHost(e)] = true
		}
	}
	return func(host string) (string, string, error) {
		if !allowed[canonicalHost(host)] {
			return "", "", nil
		}
		return auth.Username, auth.Password, nil
	}
}

// canonicalHost reduces a server address as found in docker config files
// ("https://index.docker.io/v1/", "registry.example.com:443",
// "Registry.Example.com") to a comparable host[:port].
func canonicalHost(addr string) string {
	addr = strings.ToLower(strings.TrimSpace(addr))
	if strings.Contains(addr, "://") {
		if u, err := url.Parse(addr); err == nil {
			addr = u.Host
		}
	}
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	if h, port, err := net.SplitHostPort(addr); err == nil && port == "443" {
		addr = h
	}
	switch addr {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return addr
}
