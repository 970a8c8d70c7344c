package image

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCanonicalHost(t *testing.T) {
	cases := map[string]string{
		"docker.io":                    "docker.io",
		"https://index.docker.io/v1/":  "docker.io",
		"registry-1.docker.io":         "docker.io",
		"Registry.Example.com":         "registry.example.com",
		"registry.example.com:443":     "registry.example.com",
		"https://registry.example.com": "registry.example.com",
		"registry.example.com:5000":    "registry.example.com:5000",
		"http://127.0.0.1:5000/v2/":    "127.0.0.1:5000",
		" localhost:5000 ":             "localhost:5000",
		"":                             "",
	}
	for in, want := range cases {
		if got := canonicalHost(in); got != want {
			t.Errorf("canonicalHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCredentialsFor(t *testing.T) {
	creds := func(server string) *Auth { return &Auth{Username: "u", Password: "p", ServerAddress: server} }
	cases := []struct {
		name      string
		auth      *Auth
		refHost   string
		endpoints []string
		host      string
		want      bool
	}{
		{"anonymous", nil, "r.example.com", nil, "r.example.com", false},
		{"empty credentials", &Auth{ServerAddress: "r.example.com"}, "r.example.com", nil, "r.example.com", false},
		{"server matches", creds("r.example.com"), "r.example.com", nil, "r.example.com", true},
		{"server with scheme and port 443", creds("https://r.example.com:443/"), "r.example.com", nil, "r.example.com", true},
		{"server differs", creds("other.example.com"), "r.example.com", nil, "r.example.com", false},
		{"port differs", creds("r.example.com:5000"), "r.example.com", nil, "r.example.com", false},
		{"empty server means image registry", creds(""), "r.example.com", nil, "r.example.com", true},
		{"empty server not for other hosts", creds(""), "r.example.com", nil, "evil.example.com", false},
		{"docker hub alias", creds("https://index.docker.io/v1/"), "docker.io", []string{"registry-1.docker.io"}, "registry-1.docker.io", true},
		{"docker hub default", creds(""), "docker.io", []string{"registry-1.docker.io"}, "registry-1.docker.io", true},
		{"configured mirror of image registry", creds(""), "r.example.com", []string{"mirror.internal", "r.example.com"}, "mirror.internal", true},
		{"configured mirror, server named", creds("r.example.com"), "r.example.com", []string{"mirror.internal"}, "mirror.internal", true},
		{"mirror of another registry", creds("other.example.com"), "r.example.com", []string{"mirror.internal"}, "mirror.internal", false},
		{"credentials for the mirror itself", creds("mirror.internal"), "r.example.com", []string{"mirror.internal"}, "mirror.internal", true},
		{"credentials for the mirror not for registry", creds("mirror.internal"), "r.example.com", []string{"mirror.internal", "r.example.com"}, "r.example.com", false},
		{"redirect target", creds(""), "r.example.com", nil, "blobs.s3.example.net", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, p, err := credentialsFor(tc.auth, tc.refHost, tc.endpoints)(tc.host)
			if err != nil {
				t.Fatal(err)
			}
			got := u != "" || p != ""
			if got != tc.want {
				t.Fatalf("credentials for %q given: %v, want %v", tc.host, got, tc.want)
			}
			if got && (u != "u" || p != "p") {
				t.Fatalf("wrong credentials handed out")
			}
		})
	}
}

func TestRegistryHostsSchemes(t *testing.T) {
	hostsDir := t.TempDir()
	dir := filepath.Join(hostsDir, "r.example.com")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := "server = \"https://r.example.com\"\n\n[host.\"http://mirror.internal:8080\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}

	type endpoint struct{ scheme, host string }
	cases := []struct {
		name, hostsDir, refHost string
		want                    []endpoint
		plainFallback           bool // a loopback registry may answer in plain HTTP
	}{
		{"docker hub", "", "docker.io", []endpoint{{"https", "registry-1.docker.io"}}, false},
		{"remote registry", "", "r.example.com", []endpoint{{"https", "r.example.com"}}, false},
		{"remote registry with port", "", "r.example.com:5000", []endpoint{{"https", "r.example.com:5000"}}, false},
		{"loopback ip", "", "127.0.0.1:5000", []endpoint{{"https", "127.0.0.1:5000"}}, true},
		{"localhost", "", "localhost:5000", []endpoint{{"https", "localhost:5000"}}, true},
		{"hosts dir mirror", hostsDir, "r.example.com", []endpoint{{"http", "mirror.internal:8080"}, {"https", "r.example.com"}}, false},
		{"hosts dir without entry", hostsDir, "other.example.com", []endpoint{{"https", "other.example.com"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hosts, err := registryHosts(context.Background(), tc.hostsDir, tc.refHost, nil)(tc.refHost)
			if err != nil {
				t.Fatal(err)
			}
			if len(hosts) != len(tc.want) {
				t.Fatalf("got %d endpoints %+v, want %v", len(hosts), hosts, tc.want)
			}
			for i, h := range hosts {
				if h.Scheme != tc.want[i].scheme || h.Host != tc.want[i].host || h.Path != "/v2" {
					t.Errorf("endpoint %d = %s://%s%s, want %s://%s/v2", i, h.Scheme, h.Host, h.Path, tc.want[i].scheme, tc.want[i].host)
				}
			}
			// A plain *http.Transport means no fallback from HTTPS to HTTP.
			_, direct := hosts[len(hosts)-1].Client.Transport.(*http.Transport)
			if direct == tc.plainFallback {
				t.Errorf("plain HTTP fallback = %v, want %v", !direct, tc.plainFallback)
			}
		})
	}
}

// fakeRegistry answers manifest HEADs for one repository over plain HTTP,
// optionally behind basic auth.
type fakeRegistry struct {
	user, pass string // basic auth when set
	status     int    // forced status for manifest requests when set
	requests   atomic.Int32
	authorized atomic.Int32
}

const fakeManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if f.user != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != f.user || p != f.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		f.authorized.Add(1)
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
		return
	}
	if r.URL.Path != "/v2/team/app/manifests/1" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	w.Header().Set("Docker-Content-Digest", fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(fakeManifest))))
	w.Header().Set("Content-Length", fmt.Sprint(len(fakeManifest)))
	if r.Method == http.MethodGet {
		fmt.Fprint(w, fakeManifest)
	}
}

func TestResolverAgainstRegistry(t *testing.T) {
	const secret = "hunter2-very-secret"
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()

	cases := []struct {
		name        string
		reg         *fakeRegistry
		host        string // overrides the test server address
		repo        string
		auth        func(host string) *Auth
		wantErr     bool
		recoverable bool
		authorized  bool
	}{
		{name: "anonymous", reg: &fakeRegistry{}},
		{name: "localhost name", reg: &fakeRegistry{}, host: "localhost"},
		{name: "credentials for the registry", reg: &fakeRegistry{user: "bob", pass: secret},
			auth: func(h string) *Auth { return &Auth{Username: "bob", Password: secret, ServerAddress: h} }, authorized: true},
		{name: "credentials without server address", reg: &fakeRegistry{user: "bob", pass: secret},
			auth: func(string) *Auth { return &Auth{Username: "bob", Password: secret} }, authorized: true},
		{name: "credentials for another registry", reg: &fakeRegistry{user: "bob", pass: secret},
			auth: func(string) *Auth {
				return &Auth{Username: "bob", Password: secret, ServerAddress: "other.example.com"}
			}, wantErr: true},
		{name: "no credentials", reg: &fakeRegistry{user: "bob", pass: secret}, wantErr: true},
		{name: "wrong password", reg: &fakeRegistry{user: "bob", pass: "right-one"},
			auth: func(h string) *Auth { return &Auth{Username: "bob", Password: secret, ServerAddress: h} }, wantErr: true},
		{name: "not found", reg: &fakeRegistry{}, repo: "team/missing", wantErr: true},
		{name: "server error", reg: &fakeRegistry{status: http.StatusServiceUnavailable}, wantErr: true, recoverable: true},
		{name: "unreachable", reg: &fakeRegistry{}, host: closed, wantErr: true, recoverable: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.reg)
			defer srv.Close()
			host := strings.TrimPrefix(srv.URL, "http://")
			switch tc.host {
			case "":
			case "localhost":
				_, port, _ := net.SplitHostPort(host)
				host = "localhost:" + port
			default:
				host = tc.host
			}
			repo := tc.repo
			if repo == "" {
				repo = "team/app"
			}
			var auth *Auth
			if tc.auth != nil {
				auth = tc.auth(host)
			}
			ref, err := Normalize(host + "/" + repo + ":1")
			if err != nil {
				t.Fatal(err)
			}

			_, desc, err := newResolver(context.Background(), "", host, auth).Resolve(context.Background(), ref)
			err = redact(err, auth)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("resolve %s succeeded, want an error", ref)
				}
				t.Logf("error: %v", err)
				if got := IsRecoverable(err); got != tc.recoverable {
					t.Errorf("IsRecoverable(%v) = %v, want %v", err, got, tc.recoverable)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve %s: %v", ref, err)
			}
			if want := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(fakeManifest))); desc.Digest.String() != want {
				t.Errorf("resolved %s, want %s", desc.Digest, want)
			}
			if tc.authorized && tc.reg.authorized.Load() == 0 {
				t.Errorf("registry saw no authorized request")
			}
		})
	}
}

func TestResolverHostsDirServer(t *testing.T) {
	reg := &fakeRegistry{}
	srv := httptest.NewServer(reg)
	defer srv.Close()

	// registry.test is served, in plain HTTP, by the test server: only the
	// hosts dir can say so.
	hostsDir := t.TempDir()
	dir := filepath.Join(hostsDir, "registry.test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("server = %q\n", srv.URL)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := "registry.test/team/app:1"
	if _, _, err := newResolver(context.Background(), hostsDir, "registry.test", nil).Resolve(context.Background(), ref); err != nil {
		t.Fatalf("resolve through hosts dir: %v", err)
	}
	if reg.requests.Load() == 0 {
		t.Fatal("hosts dir server was not asked")
	}
}
