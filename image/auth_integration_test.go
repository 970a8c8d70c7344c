//go:build integration

package image_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-containerd/nomad-driver-containerd/image"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

const (
	authUser   = "puller"
	authSecret = "Corr3ct-h0rse-for-tests"
)

// authBed is a registry with TLS (CA given through a hosts.toml dir) and
// htpasswd auth, holding busybox under several repositories so that every
// case pulls anew.
type authBed struct {
	cd       *testbed.Containerd
	reg      *testbed.Registry
	hostsDir string
	digest   string
	ctx      context.Context
	logger   hclog.Logger
}

func newAuthBed(t *testing.T, repos ...string) *authBed {
	t.Helper()
	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	reg := testbed.StartRegistry(t, testbed.RegistryOptions{TLS: true, User: authUser, Password: authSecret})
	hostsDir, err := reg.WriteHostsDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, err := testbed.BuildBusybox()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ab := &authBed{cd: cd, reg: reg, hostsDir: hostsDir, ctx: ctx,
		logger: hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testbed.TestLog(t)})}
	for _, repo := range repos {
		d, err := reg.Push(ctx, img, repo+":1")
		if err != nil {
			t.Fatal(err)
		}
		ab.digest = d.String()
	}
	return ab
}

func (ab *authBed) manager(cfg image.Config) *image.Manager {
	cfg.HostsDir = ab.hostsDir
	cfg.PullTimeout = time.Minute
	return image.NewManager(ab.cd.Client, ab.cd.Namespace, cfg, ab.logger)
}

func (ab *authBed) ref(repo string) string { return ab.reg.Host + "/" + repo + ":1" }

// installHelper puts docker-credential-<name> running script (sh, with the
// server address read into $server) first on PATH; what it was asked for
// is appended to the returned file.
func installHelper(t *testing.T, name, script string) string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "asked")
	body := "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread -r server\necho \"$server\" >> " + log + "\n" + script + "\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-"+name), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

func writeDockerConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// requireRefused checks a pull refused for its credentials: an error that
// is not recoverable and shows no password.
func requireRefused(t *testing.T, what string, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: pull succeeded", what)
	}
	t.Logf("%s: %v", what, err)
	if image.IsRecoverable(err) {
		t.Errorf("%s: error is recoverable: %v", what, err)
	}
	for _, s := range append(secrets, authSecret) {
		if strings.Contains(err.Error(), s) {
			t.Errorf("%s: error shows a password: %v", what, err)
		}
	}
}

func TestEnsureAuthTLSRegistry(t *testing.T) {
	ab := newAuthBed(t, "private/anon", "private/task", "private/wrong", "private/config", "private/configwrong", "private/helper", "private/credhelper")
	plain := ab.manager(image.Config{})

	_, err := plain.Ensure(ab.ctx, image.Request{Ref: ab.ref("private/anon")})
	requireRefused(t, "anonymous", err)

	const wrong = "Wr0ng-pa55word-x"
	_, err = plain.Ensure(ab.ctx, image.Request{Ref: ab.ref("private/wrong"), Auth: &image.Auth{Username: authUser, Password: wrong}})
	requireRefused(t, "task auth with a wrong password", err, wrong)

	img, err := imageOf(plain.Ensure(ab.ctx, image.Request{Ref: ab.ref("private/task"), Auth: &image.Auth{Username: authUser, Password: authSecret, ServerAddress: ab.reg.Host}}))
	if err != nil {
		t.Fatalf("task auth: %v", err)
	}
	if img.Target().Digest.String() != ab.digest {
		t.Fatalf("task auth: got %s, pushed %s", img.Target().Digest, ab.digest)
	}

	basic := base64.StdEncoding.EncodeToString([]byte(authUser + ":" + authSecret))
	good := writeDockerConfig(t, `{"auths": {"https://`+ab.reg.Host+`": {"auth": "`+basic+`"}}}`)
	if _, err := ab.manager(image.Config{AuthConfig: good}).Ensure(ab.ctx, image.Request{Ref: ab.ref("private/config")}); err != nil {
		t.Fatalf("plugin docker config: %v", err)
	}
	bad := writeDockerConfig(t, `{"auths": {"`+ab.reg.Host+`": {"username": "`+authUser+`", "password": "`+wrong+`"}}}`)
	_, err = ab.manager(image.Config{AuthConfig: bad}).Ensure(ab.ctx, image.Request{Ref: ab.ref("private/configwrong")})
	requireRefused(t, "plugin docker config with a wrong password", err, wrong)

	log := installHelper(t, "ndctest", `case "$server" in
  `+ab.reg.Host+`) printf '{"ServerURL":"%s","Username":"`+authUser+`","Secret":"`+authSecret+`"}' "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac`)
	if _, err := ab.manager(image.Config{AuthHelper: "ndctest", AuthConfig: bad}).Ensure(ab.ctx, image.Request{Ref: ab.ref("private/helper")}); err != nil {
		t.Fatalf("credential helper (over a config file with a wrong password): %v", err)
	}
	viaConfig := writeDockerConfig(t, `{"credHelpers": {"`+ab.reg.Host+`": "ndctest"}}`)
	if _, err := ab.manager(image.Config{AuthConfig: viaConfig}).Ensure(ab.ctx, image.Request{Ref: ab.ref("private/credhelper")}); err != nil {
		t.Fatalf("credHelpers entry of the docker config: %v", err)
	}
	asked, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(asked)); len(got) != 2 || got[0] != ab.reg.Host || got[1] != ab.reg.Host {
		t.Errorf("helper asked for %q, want %s twice", got, ab.reg.Host)
	}

	// Soft fail does not get around a registry that wants credentials.
	broken := installHelper(t, "ndcbroken", `echo "backend unavailable"; exit 1`)
	_, err = ab.manager(image.Config{AuthHelper: "ndcbroken"}).Ensure(ab.ctx, image.Request{Ref: ab.ref("private/anon"), AuthSoftFail: true})
	requireRefused(t, "soft fail against an auth registry", err)
	if errors.Is(err, image.ErrCredentialLookup) {
		t.Errorf("soft fail still failed on the lookup: %v", err)
	}
	if _, err := os.Stat(broken); err != nil {
		t.Errorf("the broken helper was not asked: %v", err)
	}
	ab.requireClean(t)
}

func TestEnsureAuthSoftFail(t *testing.T) {
	cd := testbed.StartContainerd(t)
	testbed.LeakCheck(t, cd)
	reg := testbed.StartRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg.PushBusybox(ctx, t, "public/busybox:1")
	ref := reg.Host + "/public/busybox:1"
	installHelper(t, "ndcbroken", `echo "helper exploded" >&2; exit 1`)
	logger := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testbed.TestLog(t)})
	mgr := image.NewManager(cd.Client, cd.Namespace, image.Config{AuthHelper: "ndcbroken"}, logger)

	_, err := mgr.Ensure(ctx, image.Request{Ref: ref})
	if !errors.Is(err, image.ErrCredentialLookup) || image.IsRecoverable(err) {
		t.Fatalf("broken helper without auth_soft_fail: err %v, want a non-recoverable credential lookup error", err)
	}
	if _, err := mgr.Ensure(ctx, image.Request{Ref: ref, AuthSoftFail: true}); err != nil {
		t.Fatalf("broken helper with auth_soft_fail, anonymous registry: %v", err)
	}
	// A task's own credentials do not ask the helper at all.
	if _, err := mgr.Ensure(ctx, image.Request{Ref: ref, ForcePull: true, Auth: &image.Auth{Username: "u", Password: "p"}}); err != nil {
		t.Fatalf("task credentials with a broken plugin helper: %v", err)
	}
}

func (ab *authBed) requireClean(t *testing.T) {
	t.Helper()
	requireNoLeases(t, ab.cd)
	requireNoIngests(t, ab.cd)
}

// requireNoIngests fails when a partial download is left in the content
// store.
func requireNoIngests(t *testing.T, cd *testbed.Containerd) {
	t.Helper()
	st, err := cd.Client.ContentStore().ListStatuses(cd.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		t.Errorf("ingest %s left behind (%d of %d bytes)", s.Ref, s.Offset, s.Total)
	}
}
