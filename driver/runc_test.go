package driver

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
	rspecfeatures "github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/shoenig/test/must"
)

func TestParseRuncVersion(t *testing.T) {
	cases := []struct {
		in   string
		want runcVersion
		ok   bool
	}{
		{"1.1.12", runcVersion{1, 1, 12, -1}, true},
		{"1.1.5+ds1", runcVersion{1, 1, 5, -1}, true},
		{"v1.2.8", runcVersion{1, 2, 8, -1}, true},
		{"1.4.0-rc.3", runcVersion{1, 4, 0, 3}, true},
		{"1.0.0-rc92", runcVersion{1, 0, 0, 92}, true},
		{"1.2.0~rc1+dfsg", runcVersion{1, 2, 0, 1}, true},
		{"1.1", runcVersion{}, false},
		{"1.1.x", runcVersion{}, false},
		{"1.4.0-beta.1", runcVersion{}, false},
		{"", runcVersion{}, false},
	}
	for _, c := range cases {
		got, ok := parseRuncVersion(c.in)
		must.Eq(t, c.ok, ok, must.Sprint(c.in))
		if ok {
			must.Eq(t, c.want, got, must.Sprint(c.in))
		}
	}
}

func TestCheckRunc(t *testing.T) {
	all2025 := []string{"CVE-2025-31133", "CVE-2025-52565", "CVE-2025-52881"}
	cases := []struct {
		version, commit string
		missing         []string
		unknown         bool
	}{
		{version: "1.4.0", commit: "v1.4.0-0-gabc"},
		{version: "1.4.0-rc.3"},
		{version: "1.4.0-rc.2", missing: all2025},
		{version: "1.3.3"},
		{version: "1.3.2", missing: all2025},
		{version: "1.2.8"},
		{version: "1.2.7", missing: all2025},
		{version: "1.5.1"},
		{version: "2.0.0"},
		{version: "1.1.15", missing: all2025},
		{version: "1.1.11", missing: append([]string{"CVE-2024-21626"}, all2025...)},
		{version: "1.0.0-rc92", missing: append([]string{"CVE-2024-21626"}, all2025...)},
		{version: "1.0.0-rc6", missing: append([]string{"CVE-2019-5736", "CVE-2024-21626"}, all2025...)},
		// Debian bookworm: CVE-2024-21626 backported in deb12u1, the 2025 ones not
		{version: "1.1.5+ds1", commit: "1.1.5+ds1-1+deb12u1", missing: all2025},
		{version: "1.1.5+ds1", commit: "1.1.5+ds1-1+deb12u3", missing: all2025},
		{version: "1.1.5+ds1", commit: "1.1.5+ds1-1", missing: append([]string{"CVE-2024-21626"}, all2025...)},
		{version: "1.1.5+ds1", commit: "1.1.5+ds1-1+deb12u1x", missing: append([]string{"CVE-2024-21626"}, all2025...)},
		{version: "", unknown: true},
		{version: "main", unknown: true},
	}
	for _, c := range cases {
		s := checkRunc(c.version, c.commit)
		must.Eq(t, c.unknown, s.unknown, must.Sprint(c.version))
		must.Eq(t, c.missing, s.missing, must.Sprintf("%s %s", c.version, c.commit))
		if len(c.missing) == 0 && !c.unknown {
			must.Eq(t, "", s.warning())
		} else {
			must.StrContains(t, s.warning(), "use runc 1.2.8, 1.3.3, 1.4.0 or later")
		}
	}
}

func TestFingerprintRunc(t *testing.T) {
	var logs bytes.Buffer
	d := New(hclog.New(&hclog.LoggerOptions{Output: &logs}))
	debian := &rspecfeatures.Features{Annotations: map[string]string{
		runcVersionAnnotation: "1.1.5+ds1", runcCommitAnnotation: "1.1.5+ds1-1+deb12u1",
	}}
	fingerprint := func(runtime string, features any) map[string]*pstructs.Attribute {
		fp := &drivers.Fingerprint{Attributes: map[string]*pstructs.Attribute{}}
		d.fingerprintRunc(fp, runtime, features)
		return fp.Attributes
	}
	attrs := fingerprint("io.containerd.runc.v2", debian)
	must.Eq(t, "1.1.5+ds1", attrs["driver.containerd.runc.version"].GoString())
	must.Eq(t, "runc 1.1.5+ds1 (commit 1.1.5+ds1-1+deb12u1) lacks the fixes for CVE-2025-31133, CVE-2025-52565, CVE-2025-52881: a container may break out to the host; use runc 1.2.8, 1.3.3, 1.4.0 or later",
		attrs["driver.containerd.runc.warning"].GoString())
	// logged once, not on every fingerprint
	fingerprint("io.containerd.runc.v2", debian)
	must.Eq(t, 1, strings.Count(logs.String(), "runc lacks breakout fixes"))

	fixed := &rspecfeatures.Features{Annotations: map[string]string{runcVersionAnnotation: "1.3.3"}}
	attrs = fingerprint("io.containerd.runc.v2", fixed)
	must.Eq(t, "1.3.3", attrs["driver.containerd.runc.version"].GoString())
	must.MapNotContainsKey(t, attrs, "driver.containerd.runc.warning")

	// a runc shim without features: the version is unknown, and said so
	attrs = fingerprint("io.containerd.runc.v2", nil)
	must.StrContains(t, attrs["driver.containerd.runc.warning"].GoString(), "runc does not report its version")
	// another runtime is not judged as runc
	must.MapEmpty(t, fingerprint("io.containerd.kata.v2", nil))
}
