package image

import (
	"errors"
	"strings"
	"testing"
)

// FuzzNormalize: any string is either refused with ErrInvalidReference and
// the reason, or normalized into a fully qualified reference that
// normalizes to itself and splits into a registry host.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"busybox", "library/busybox:1", "docker.io/library/busybox:latest",
		"registry.example.com:5000/team/app@sha256:" + strings.Repeat("ab", 32),
		"127.0.0.1:5000/x/y:1@sha256:" + strings.Repeat("0", 64),
		"http://registry.example.com/app", "BusyBox", "a/../b", " busybox", "busybox:", "@sha256:", "localhost/x:y:z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		n, err := Normalize(ref)
		if err != nil {
			if !errors.Is(err, ErrInvalidReference) || !strings.Contains(err.Error(), "expected [registry[:port]/]repository") {
				t.Fatalf("Normalize(%q) error %q does not say what is allowed", ref, err)
			}
			return
		}
		if strings.Contains(n, "://") {
			t.Fatalf("Normalize(%q) = %q carries a scheme", ref, n)
		}
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q, which normalizes to %q, %v", ref, n, again, err)
		}
		host, _, err := splitRef(n)
		if err != nil || host == "" {
			t.Fatalf("splitRef(%q) = %q, %v", n, host, err)
		}
	})
}
