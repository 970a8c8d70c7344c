package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestNormalize(t *testing.T) {
	cases := []struct {
		in   string
		want string
	}{
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"library/busybox:1", "docker.io/library/busybox:1"},
		{"docker.io/library/busybox", "docker.io/library/busybox:latest"},
		{"team/app", "docker.io/team/app:latest"},
		{"registry.example.com/team/app:v2", "registry.example.com/team/app:v2"},
		{"localhost:5000/app", "localhost:5000/app:latest"},
		{"127.0.0.1:5000/x/y:1", "127.0.0.1:5000/x/y:1"},
		{"host:5000/x/y@" + testDigest, "host:5000/x/y@" + testDigest},
		{"host:5000/x/y:1@" + testDigest, "host:5000/x/y@" + testDigest},
		{"busybox@" + testDigest, "docker.io/library/busybox@" + testDigest},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Normalize(tc.in)
			if err != nil {
				t.Fatalf("Normalize(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNormalizeInvalid(t *testing.T) {
	cases := []struct {
		name, in, mention string
	}{
		{"empty", "", "empty"},
		{"blank", "   ", "empty"},
		{"whitespace", " busybox", "whitespace"},
		{"uppercase", "BusyBox", "lowercase"},
		{"bad tag", "busybox:-bad", "invalid reference format"},
		{"short digest", "busybox@sha256:abc", "invalid"},
		{"bad digest algorithm", "busybox@md5:" + strings.Repeat("a", 32), "invalid"},
		{"spaces inside", "busy box", "invalid reference format"},
		{"trailing colon", "busybox:", "invalid reference format"},
		{"scheme", "https://registry.example.com/app", "invalid reference format"},
		{"bare hex id", strings.Repeat("a", 64), "64-byte hexadecimal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Normalize(tc.in)
			if err == nil {
				t.Fatalf("Normalize(%q) = %q, want an error", tc.in, got)
			}
			if !errors.Is(err, ErrInvalidReference) {
				t.Fatalf("error %v does not wrap ErrInvalidReference", err)
			}
			msg := err.Error()
			if tc.in != "" && !strings.Contains(msg, tc.in) && strings.TrimSpace(tc.in) != "" {
				t.Errorf("error %q does not name the value %q", msg, tc.in)
			}
			if !strings.Contains(msg, tc.mention) {
				t.Errorf("error %q does not mention %q", msg, tc.mention)
			}
			if !strings.Contains(msg, "expected [registry[:port]/]repository") {
				t.Errorf("error %q does not say what is allowed", msg)
			}
			if IsRecoverable(err) {
				t.Errorf("IsRecoverable(%v) = true, want false", err)
			}
		})
	}
}

func TestSplitRef(t *testing.T) {
	cases := []struct {
		in, host string
		pin      digest.Digest
	}{
		{"docker.io/library/busybox:latest", "docker.io", ""},
		{"127.0.0.1:5000/x/y:1", "127.0.0.1:5000", ""},
		{"host:5000/x/y@" + testDigest, "host:5000", testDigest},
	}
	for _, tc := range cases {
		host, pin, err := splitRef(tc.in)
		if err != nil {
			t.Fatalf("splitRef(%q): %v", tc.in, err)
		}
		if host != tc.host || pin != tc.pin {
			t.Errorf("splitRef(%q) = %q, %q; want %q, %q", tc.in, host, pin, tc.host, tc.pin)
		}
	}
}
