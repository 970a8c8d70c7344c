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
	opts := config.HostOptions{
		// Always set, so that a registry asking for basic auth without
		// credentials fails as an authorization error.
		Credentials: credentialsFor(auth, refHost),
	}
	if hostsDir != "" {
		opts.HostDir = config.HostDirFromRoot(hostsDir)
	}
	return config.ConfigureHosts(ctx, opts)
}

// credentialsFor returns the credential callback of the resolver. The
// callback is asked with the host a request goes to (a mirror, the registry
// itself, "registry-1.docker.io" for Docker Hub); it hands out the task's
// credentials only when that host is auth.ServerAddress, or, when
// ServerAddress is empty, the registry named by the image reference. Any
// other host (a mirror, a redirect target) gets anonymous access.
func credentialsFor(auth *Auth, refHost string) func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		if auth == nil || (auth.Username == "" && auth.Password == "") {
			return "", "", nil
		}
		want := auth.ServerAddress
		if strings.TrimSpace(want) == "" {
			want = refHost
		}
		if canonicalHost(host) != canonicalHost(want) {
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
