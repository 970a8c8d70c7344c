package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrCredentialLookup is wrapped by the errors of looking up plugin-level
// registry credentials: a credential helper that fails, a docker config file
// that cannot be read or parsed. They are not recoverable.
var ErrCredentialLookup = errors.New("registry credential lookup failed")

// helperTimeout bounds one run of a credential helper.
const helperTimeout = 30 * time.Second

// helperPrefix is the name every docker credential helper binary starts with.
const helperPrefix = "docker-credential-"

// dockerHubServer is the server address docker's tools file Docker Hub
// credentials under.
const dockerHubServer = "https://index.docker.io/v1/"

// dockerConfig is the part of a docker config.json that concerns registry
// credentials.
type dockerConfig struct {
	Auths       map[string]dockerAuth `json:"auths"`
	CredHelpers map[string]string     `json:"credHelpers"`
	CredsStore  string                `json:"credsStore"`
}

// dockerAuth is one entry of "auths": either "auth" (base64 of
// user:password) or username and password, or an identity token.
type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

// readDockerConfig reads and parses the docker config file at path.
func readDockerConfig(path string) (*dockerConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read docker config: %w", err)
	}
	var dc dockerConfig
	if err := json.Unmarshal(b, &dc); err != nil {
		return nil, fmt.Errorf("failed to parse docker config %s: %w", path, err)
	}
	return &dc, nil
}

// helperFor is the credential helper the config names for host: its
// credHelpers entry, else its credsStore; "" for none.
func (dc *dockerConfig) helperFor(host string) string {
	want := canonicalHost(host)
	for server, helper := range dc.CredHelpers {
		if canonicalHost(server) == want && helper != "" {
			return helper
		}
	}
	return dc.CredsStore
}

// stored returns the "auths" entry for host decoded into credentials, nil
// when there is none.
func (dc *dockerConfig) stored(host string) (*Auth, error) {
	want := canonicalHost(host)
	entry, ok := dc.Auths[host]
	if !ok {
		for server, e := range dc.Auths {
			if canonicalHost(server) == want {
				entry, ok = e, true
				break
			}
		}
	}
	if !ok {
		return nil, nil
	}
	auth := &Auth{Username: entry.Username, Password: entry.Password, ServerAddress: host}
	if entry.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(entry.Auth))
		if err != nil {
			return nil, fmt.Errorf("the auth field for %s is not valid base64", host)
		}
		user, pass, found := strings.Cut(string(raw), ":")
		if !found {
			return nil, fmt.Errorf("the auth field for %s is not base64 of user:password", host)
		}
		auth.Username, auth.Password = user, pass
	}
	if entry.IdentityToken != "" {
		// An identity (refresh) token goes in place of the password with
		// no user name: that is how containerd's authorizer tells it.
		auth.Username, auth.Password = "", entry.IdentityToken
	}
	if auth.Username == "" && auth.Password == "" {
		return nil, nil
	}
	return auth, nil
}

// lookup returns the credentials the config holds for host, through the
// helper it names for host or from "auths", and where they came from.
func (dc *dockerConfig) lookup(ctx context.Context, path, host string) (*Auth, string, error) {
	if helper := dc.helperFor(host); helper != "" {
		auth, err := helperGet(ctx, helper, host)
		if err != nil {
			return nil, "", fmt.Errorf("credential helper %s%s named by %s: %w", helperPrefix, helper, path, err)
		}
		if auth != nil {
			return auth, "credential helper " + helperPrefix + helper + " (from " + path + ")", nil
		}
	}
	auth, err := dc.stored(host)
	if err != nil {
		return nil, "", fmt.Errorf("docker config %s: %w", path, err)
	}
	if auth == nil {
		return nil, "", nil
	}
	return auth, "docker config " + path, nil
}

// helperServerURL is what a credential helper is asked for: the address
// docker's tools store credentials of host under.
func helperServerURL(host string) string {
	if canonicalHost(host) == "docker.io" {
		return dockerHubServer
	}
	return host
}

// helperGet runs `docker-credential-<helper> get` for registry host, as
// docker's CLI does: the server address on stdin, JSON with Username and
// Secret on stdout. A helper that has nothing for the server ("credentials
// not found") gives nil credentials and no error.
func helperGet(ctx context.Context, helper, host string) (*Auth, error) {
	if helper == "" || strings.ContainsAny(helper, `/\`) {
		return nil, fmt.Errorf("invalid credential helper name %q", helper)
	}
	bin, err := exec.LookPath(helperPrefix + helper)
	if err != nil {
		return nil, fmt.Errorf("credential helper not found: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, helperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "get")
	cmd.Stdin = strings.NewReader(helperServerURL(host))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stdout.String() + " " + stderr.String())
		if strings.Contains(strings.ToLower(msg), "credentials not found") {
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s get: %w", bin, ctx.Err())
		}
		return nil, fmt.Errorf("%s get: %w: %s", bin, err, truncate(msg, 200))
	}
	var resp struct {
		Username string `json:"Username"`
		Secret   string `json:"Secret"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		// The output may hold a secret: say only that it is not JSON.
		return nil, fmt.Errorf("%s get: output is not the JSON credentials object", bin)
	}
	if resp.Username == "" && resp.Secret == "" {
		return nil, nil
	}
	auth := &Auth{Username: resp.Username, Password: resp.Secret, ServerAddress: host}
	if resp.Username == "<token>" {
		// docker's convention for an identity token.
		auth.Username = ""
	}
	return auth, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// pluginCredentials looks up the plugin-level credentials for registry
// host: the configured credential helper first, then the docker config
// file (its credHelpers / credsStore, then its auths). nil means anonymous;
// source says where the credentials came from (never what they are).
func pluginCredentials(ctx context.Context, cfg Config, host string) (auth *Auth, source string, err error) {
	if cfg.AuthHelper != "" {
		auth, err := helperGet(ctx, cfg.AuthHelper, host)
		if err != nil {
			return nil, "", fmt.Errorf("%w for %s: credential helper %s%s: %w", ErrCredentialLookup, host, helperPrefix, cfg.AuthHelper, err)
		}
		if auth != nil {
			return auth, "credential helper " + helperPrefix + cfg.AuthHelper, nil
		}
	}
	if cfg.AuthConfig != "" {
		dc, err := readDockerConfig(cfg.AuthConfig)
		if err != nil {
			return nil, "", fmt.Errorf("%w for %s: %w", ErrCredentialLookup, host, err)
		}
		auth, source, err := dc.lookup(ctx, cfg.AuthConfig, host)
		if err != nil {
			return nil, "", fmt.Errorf("%w for %s: %w", ErrCredentialLookup, host, err)
		}
		if auth != nil {
			return auth, source, nil
		}
	}
	return nil, "", nil
}

// hasCredentials tells whether auth carries anything to log in with.
func hasCredentials(auth *Auth) bool {
	return auth != nil && (auth.Username != "" || auth.Password != "")
}

// credentials are the ones a pull uses: the task's own when it has any,
// else the plugin-level ones for the image's registry, else none. With
// job.softFail a failed plugin-level lookup is logged and the pull goes on
// anonymously.
func (m *Manager) credentials(ctx context.Context, logger hclog.Logger, job pullJob) (*Auth, error) {
	if hasCredentials(job.auth) {
		logger.Debug("using the task's registry credentials")
		return job.auth, nil
	}
	auth, source, err := pluginCredentials(ctx, m.cfg, job.host)
	if err != nil {
		if job.softFail {
			logger.Warn("registry credential lookup failed, pulling anonymously (auth_soft_fail)", "registry", job.host, "error", err)
			return nil, nil
		}
		return nil, err
	}
	if auth != nil {
		logger.Debug("using registry credentials", "registry", job.host, "source", source)
	}
	return auth, nil
}

// authKey distinguishes pulls made with different credentials, so that a
// caller never gets the result (or the refusal) of someone else's login. It
// is a hash: credentials are never kept in the clear.
func authKey(auth *Auth) string {
	if auth == nil || (auth.Username == "" && auth.Password == "") {
		return ""
	}
	h := sha256.New()
	for _, s := range []string{auth.ServerAddress, auth.Username, auth.Password} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}
