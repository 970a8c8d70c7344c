package image

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// installHelper puts docker-credential-<name> running script (a sh body that
// has read the server address into $server) first on PATH. Every server it
// is asked about is appended to the returned log file.
func installHelper(t *testing.T, name, script string) (logFile string) {
	t.Helper()
	dir := t.TempDir()
	logFile = filepath.Join(dir, "asked")
	body := "#!/bin/sh\n" +
		"[ \"$1\" = get ] || { echo \"unexpected arguments: $*\" >&2; exit 3; }\n" +
		"read -r server\n" +
		"echo \"$server\" >> " + logFile + "\n" +
		script + "\n"
	writeFile(t, dir, helperPrefix+name, body, 0o755)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return logFile
}

func asked(t *testing.T, logFile string) []string {
	t.Helper()
	b, err := os.ReadFile(logFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func TestDockerConfigAuths(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "config.json", `{
	  "auths": {
	    "https://index.docker.io/v1/": {"auth": "`+b64("hubuser:hub:pass")+`"},
	    "r.example.com:5000": {"username": "fielduser", "password": "fieldpass"},
	    "https://token.example.com": {"identitytoken": "refresh-me"},
	    "empty.example.com": {},
	    "bad.example.com": {"auth": "!!!not base64"},
	    "nocolon.example.com": {"auth": "`+b64("justauser")+`"}
	  }
	}`, 0o600)
	cases := []struct {
		host, user, pass string
		none, fails      bool
	}{
		{host: "docker.io", user: "hubuser", pass: "hub:pass"},
		{host: "r.example.com:5000", user: "fielduser", pass: "fieldpass"},
		{host: "r.example.com", none: true},
		{host: "token.example.com", user: "", pass: "refresh-me"},
		{host: "empty.example.com", none: true},
		{host: "other.example.com", none: true},
		{host: "bad.example.com", fails: true},
		{host: "nocolon.example.com", fails: true},
	}
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			auth, source, err := pluginCredentials(context.Background(), Config{AuthConfig: cfg}, tc.host)
			switch {
			case tc.fails:
				if err == nil || !errors.Is(err, ErrCredentialLookup) || IsRecoverable(err) {
					t.Fatalf("want a non-recoverable lookup error, got %v", err)
				}
				if strings.Contains(err.Error(), "justauser") {
					t.Fatalf("error shows the decoded auth field: %v", err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case tc.none:
				if auth != nil {
					t.Fatalf("got credentials %q from %s, want none", auth.Username, source)
				}
				return
			}
			if auth == nil || auth.Username != tc.user || auth.Password != tc.pass || auth.ServerAddress != tc.host {
				t.Fatalf("got %+v, want %s / %s for %s", auth, tc.user, tc.pass, tc.host)
			}
			if source != "docker config "+cfg {
				t.Errorf("source %q", source)
			}
		})
	}
}

func TestDockerConfigUnreadable(t *testing.T) {
	dir := t.TempDir()
	for name, path := range map[string]string{
		"missing":  filepath.Join(dir, "nope.json"),
		"not json": writeFile(t, dir, "garbage.json", `{"auths": {"x": {"password": "leak-me"`, 0o600),
		"a dir":    dir,
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := pluginCredentials(context.Background(), Config{AuthConfig: path}, "r.example.com")
			if !errors.Is(err, ErrCredentialLookup) || IsRecoverable(err) {
				t.Fatalf("want a non-recoverable lookup error, got %v", err)
			}
			if strings.Contains(err.Error(), "leak-me") {
				t.Fatalf("error shows file content: %v", err)
			}
		})
	}
}

func TestCredentialHelperProtocol(t *testing.T) {
	log := installHelper(t, "ndctest", `case "$server" in
  https://index.docker.io/v1/) echo '{"ServerURL":"x","Username":"hub","Secret":"hubsecret"}' ;;
  r.example.com:5000) echo '{"Username":"<token>","Secret":"idtoken"}' ;;
  notjson.example.com) echo 'Secret=s3cr3t-in-output' ;;
  broken.example.com) echo 'keychain locked'; exit 1 ;;
  empty.example.com) echo '{"Username":"","Secret":""}' ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac`)
	cfg := Config{AuthHelper: "ndctest"}
	get := func(host string) (*Auth, error) {
		auth, _, err := pluginCredentials(context.Background(), cfg, host)
		return auth, err
	}

	auth, err := get("docker.io")
	if err != nil || auth == nil || auth.Username != "hub" || auth.Password != "hubsecret" {
		t.Fatalf("docker.io: %+v %v", auth, err)
	}
	auth, err = get("r.example.com:5000")
	if err != nil || auth == nil || auth.Username != "" || auth.Password != "idtoken" {
		t.Fatalf("identity token: %+v %v", auth, err)
	}
	for _, host := range []string{"unknown.example.com", "empty.example.com"} {
		if auth, err := get(host); err != nil || auth != nil {
			t.Fatalf("%s: want anonymous, got %+v %v", host, auth, err)
		}
	}
	_, err = get("broken.example.com")
	if !errors.Is(err, ErrCredentialLookup) || !strings.Contains(err.Error(), "keychain locked") || !strings.Contains(err.Error(), "docker-credential-ndctest") {
		t.Fatalf("broken helper: %v", err)
	}
	_, err = get("notjson.example.com")
	if !errors.Is(err, ErrCredentialLookup) || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("helper with bad output: %v", err)
	}
	want := []string{"https://index.docker.io/v1/", "r.example.com:5000", "unknown.example.com", "empty.example.com", "broken.example.com", "notjson.example.com"}
	if got := asked(t, log); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("helper was asked for %q, want %q", got, want)
	}

	if _, _, err := pluginCredentials(context.Background(), Config{AuthHelper: "ndc-no-such-helper"}, "r.example.com"); !errors.Is(err, ErrCredentialLookup) {
		t.Fatalf("missing helper: %v", err)
	}
	if _, _, err := pluginCredentials(context.Background(), Config{AuthHelper: "../ndctest"}, "r.example.com"); err == nil {
		t.Fatal("a helper name with a path was run")
	}
}

func TestDockerConfigHelpers(t *testing.T) {
	log := installHelper(t, "ndctest", `case "$server" in
  helped.example.com|stored.example.com) echo '{"Username":"fromhelper","Secret":"helpersecret"}' ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac`)
	dir := t.TempDir()
	withHelpers := writeFile(t, dir, "helpers.json", `{
	  "auths": {"fallback.example.com": {"auth": "`+b64("fileuser:filepass")+`"},
	            "helped.example.com": {"auth": "`+b64("fileuser:filepass")+`"}},
	  "credHelpers": {"https://helped.example.com": "ndctest", "fallback.example.com": "ndctest"}
	}`, 0o600)
	withStore := writeFile(t, dir, "store.json", `{
	  "auths": {"fallback.example.com": {"auth": "`+b64("fileuser:filepass")+`"}},
	  "credsStore": "ndctest"
	}`, 0o600)
	cases := []struct {
		cfg, host, user string
	}{
		{withHelpers, "helped.example.com", "fromhelper"}, // credHelpers entry wins over auths
		{withHelpers, "fallback.example.com", "fileuser"}, // helper has none: auths
		{withHelpers, "stored.example.com", ""},           // no credHelpers entry, no credsStore
		{withStore, "stored.example.com", "fromhelper"},   // credsStore for every registry
		{withStore, "fallback.example.com", "fileuser"},   // store has none: auths
		{withStore, "nowhere.example.com", ""},            // anonymous
	}
	for _, tc := range cases {
		auth, source, err := pluginCredentials(context.Background(), Config{AuthConfig: tc.cfg}, tc.host)
		if err != nil {
			t.Fatalf("%s in %s: %v", tc.host, filepath.Base(tc.cfg), err)
		}
		got := ""
		if auth != nil {
			got = auth.Username
		}
		if got != tc.user {
			t.Errorf("%s in %s: user %q (from %q), want %q", tc.host, filepath.Base(tc.cfg), got, source, tc.user)
		}
		if got == "fromhelper" && !strings.Contains(source, "docker-credential-ndctest") {
			t.Errorf("source %q does not name the helper", source)
		}
	}
	want := "helped.example.com fallback.example.com stored.example.com fallback.example.com nowhere.example.com"
	if got := strings.Join(asked(t, log), " "); got != want {
		t.Errorf("helper asked for %q, want %q", got, want)
	}
}

func TestCredentialPrecedence(t *testing.T) {
	installHelper(t, "ndctest", `case "$server" in
  helper.example.com) echo '{"Username":"helperuser","Secret":"helpersecret"}' ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac`)
	cfgFile := writeFile(t, t.TempDir(), "config.json", `{"auths": {
	  "helper.example.com": {"auth": "`+b64("fileuser:filepass")+`"},
	  "file.example.com": {"auth": "`+b64("fileuser:filepass")+`"}}}`, 0o600)
	task := &Auth{Username: "taskuser", Password: "taskpass"}
	cases := []struct {
		name string
		cfg  Config
		task *Auth
		host string
		want string // user name; "" = anonymous
	}{
		{"task over everything", Config{AuthHelper: "ndctest", AuthConfig: cfgFile}, task, "helper.example.com", "taskuser"},
		{"helper over config file", Config{AuthHelper: "ndctest", AuthConfig: cfgFile}, nil, "helper.example.com", "helperuser"},
		{"config file when the helper has none", Config{AuthHelper: "ndctest", AuthConfig: cfgFile}, nil, "file.example.com", "fileuser"},
		{"empty task credentials do not count", Config{AuthConfig: cfgFile}, &Auth{ServerAddress: "file.example.com"}, "file.example.com", "fileuser"},
		{"anonymous", Config{AuthHelper: "ndctest", AuthConfig: cfgFile}, nil, "none.example.com", ""},
		{"nothing configured", Config{}, nil, "helper.example.com", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manager{cfg: tc.cfg}
			auth, err := m.credentials(context.Background(), hclog.NewNullLogger(), pullJob{host: tc.host, auth: tc.task})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if auth != nil {
				got = auth.Username
			}
			if got != tc.want {
				t.Fatalf("user %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCredentialSoftFail(t *testing.T) {
	installHelper(t, "ndctest", `echo "helper crashed; token=sekrit-$server"; exit 2`)
	var logs bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug, JSONFormat: true})
	m := &Manager{cfg: Config{AuthHelper: "ndctest"}}

	_, err := m.credentials(context.Background(), logger, pullJob{host: "r.example.com"})
	if !errors.Is(err, ErrCredentialLookup) || IsRecoverable(err) {
		t.Fatalf("without soft fail: want a non-recoverable lookup error, got %v", err)
	}

	auth, err := m.credentials(context.Background(), logger, pullJob{host: "r.example.com", softFail: true})
	if err != nil || auth != nil {
		t.Fatalf("with soft fail: want anonymous, got %+v %v", auth, err)
	}
	out := logs.String()
	if !strings.Contains(out, `"@level":"warn"`) || !strings.Contains(out, "pulling anonymously") || !strings.Contains(out, `"registry":"r.example.com"`) {
		t.Fatalf("soft fail not logged as a warning:\n%s", out)
	}

	// A config file that cannot be read soft-fails the same way.
	m.cfg = Config{AuthConfig: filepath.Join(t.TempDir(), "missing.json")}
	if auth, err := m.credentials(context.Background(), logger, pullJob{host: "r.example.com", softFail: true}); err != nil || auth != nil {
		t.Fatalf("unreadable config with soft fail: %+v %v", auth, err)
	}
	if _, err := m.credentials(context.Background(), logger, pullJob{host: "r.example.com"}); !errors.Is(err, ErrCredentialLookup) {
		t.Fatalf("unreadable config without soft fail: %v", err)
	}
}

func TestRedactPluginCredentials(t *testing.T) {
	auth := &Auth{Username: "robot$puller", Password: "p@ss/w0rd+x"}
	basic := b64(auth.Username + ":" + auth.Password)
	inner := errors.New("unexpected status from GET https://robot%24puller:p%40ss%2Fw0rd+x@r.example.com/v2/: " +
		"password p@ss/w0rd+x rejected, header Basic " + basic)
	err := redact(fmt.Errorf("failed to pull image %q: %w", "r.example.com/a:1", inner), nil, auth)
	msg := err.Error()
	for _, secret := range []string{auth.Password, "p%40ss%2Fw0rd", basic, "robot$puller", "robot%24puller"} {
		if strings.Contains(msg, secret) {
			t.Errorf("%q left in %q", secret, msg)
		}
	}
	if !errors.Is(err, inner) {
		t.Error("redaction broke the error chain")
	}
	if !strings.Contains(msg, "r.example.com/a:1") {
		t.Errorf("redaction removed more than the credentials: %q", msg)
	}
}
