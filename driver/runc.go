package driver

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	rspecfeatures "github.com/opencontainers/runtime-spec/specs-go/features"
)

// Annotations runc reports in `runc features`, which containerd's runc shim
// passes on as the runtime's features.
const (
	runcVersionAnnotation = "org.opencontainers.runc.version"
	runcCommitAnnotation  = "org.opencontainers.runc.commit"
)

// runcFixes are runc's container breakouts and, per release line, the first
// release that fixes each. A version on a listed line is fixed from that
// release on; a version on a newer line than all listed ones is fixed; any
// other is not.
var runcFixes = []struct {
	cve   string
	fixed []string
}{
	{"CVE-2019-5736", []string{"1.0.0-rc7"}}, // /proc/self/exe overwrite
	{"CVE-2024-21626", []string{"1.1.12"}},   // leaked fds, WorkingDir /proc/self/fd
	{"CVE-2025-31133", runc2025},             // maskedPaths through a /dev/null symlink
	{"CVE-2025-52565", runc2025},             // /dev/console bind mount races
	{"CVE-2025-52881", runc2025},             // procfs writes redirected by shared mounts
}

var runc2025 = []string{"1.2.8", "1.3.3", "1.4.0-rc.3"}

// debianFixes credits Debian packages of an older upstream runc with the
// fixes Debian backported, as the package changelog lists them. runc built
// by Debian reports its package version as its commit
// ("1.1.5+ds1-1+deb12u1"); a package whose commit starts with prefix and
// continues with an update number of at least minUpdate has the fixes.
// Nothing is credited that is not in a changelog: bookworm's
// 1.1.5+ds1-1+deb12u1 carries CVE-2024-21626's fix (DSA-5615) but none of
// the 2025 ones, so a node with it is flagged.
var debianFixes = []struct {
	prefix    string
	minUpdate int
	cves      []string
}{
	{prefix: "1.1.5+ds1-1+deb12u", minUpdate: 1, cves: []string{"CVE-2024-21626"}},
}

// runcStatus is what the fingerprint reports about the runc the runtime
// uses.
type runcStatus struct {
	version, commit string
	// missing are the breakouts whose fix the version is not known to have.
	missing []string
	// unknown is set when the version could not be read or parsed.
	unknown bool
}

// warning is the text of the fingerprint's warning attribute and log
// line; "" when runc has every known fix.
func (s runcStatus) warning() string {
	switch {
	case s.unknown && s.version == "":
		return "runc does not report its version (runc before 1.1 has no `runc features`), so its breakout fixes cannot be confirmed; use runc 1.2.8, 1.3.3, 1.4.0 or later"
	case s.unknown:
		return fmt.Sprintf("runc version %q is not understood, so its breakout fixes cannot be confirmed; use runc 1.2.8, 1.3.3, 1.4.0 or later", s.version)
	case len(s.missing) > 0:
		return fmt.Sprintf("runc %s (commit %s) lacks the fixes for %s: a container may break out to the host; use runc 1.2.8, 1.3.3, 1.4.0 or later",
			s.version, s.commit, strings.Join(s.missing, ", "))
	}
	return ""
}

// RuncReport is what is known of the runc a runtime runs.
type RuncReport struct {
	Version, Commit string
	// Missing are the breakouts whose fix the version is not known to have.
	Missing []string
	// Warning says what is wrong and what to use instead; "" when runc has
	// every known fix.
	Warning string
}

// RuncFromFeatures reads the version of the runc that a runtime runs from
// the features containerd reports for it (RuntimeInfo: containerd's runc
// shim passes on `runc features`) and judges it against runc's known
// container breakouts. ok is false for a runtime that is not runc's and
// reports no runc version.
func RuncFromFeatures(runtime string, features any) (r RuncReport, ok bool) {
	f, _ := features.(*rspecfeatures.Features)
	if f == nil || f.Annotations[runcVersionAnnotation] == "" {
		if !strings.HasPrefix(runtime, "io.containerd.runc.") {
			return r, false
		}
		f = &rspecfeatures.Features{}
	}
	s := checkRunc(f.Annotations[runcVersionAnnotation], f.Annotations[runcCommitAnnotation])
	return RuncReport{Version: s.version, Commit: s.commit, Missing: s.missing, Warning: s.warning()}, true
}

// checkRunc judges runc's reported version and commit.
func checkRunc(version, commit string) runcStatus {
	s := runcStatus{version: version, commit: commit}
	v, ok := parseRuncVersion(version)
	if !ok {
		s.unknown = true
		return s
	}
	for _, f := range runcFixes {
		if !v.hasFix(f.fixed) && !debianCredits(commit, f.cve) {
			s.missing = append(s.missing, f.cve)
		}
	}
	return s
}

func debianCredits(commit, cve string) bool {
	for _, d := range debianFixes {
		rest, ok := strings.CutPrefix(commit, d.prefix)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err == nil && n >= d.minUpdate && slices.Contains(d.cves, cve) {
			return true
		}
	}
	return false
}

// runcVersion is major.minor.patch with an optional release candidate
// number (rc < 0 for a final release).
type runcVersion struct {
	major, minor, patch, rc int
}

// parseRuncVersion reads "1.1.12", "1.4.0-rc.3", "1.0.0-rc92",
// "1.1.5+ds1" (build metadata such as Debian's is ignored) or "1.2.0~rc1".
func parseRuncVersion(s string) (runcVersion, bool) {
	s, _, _ = strings.Cut(strings.TrimPrefix(strings.TrimSpace(s), "v"), "+")
	core, pre, hasPre := strings.Cut(strings.ReplaceAll(s, "~", "-"), "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return runcVersion{}, false
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return runcVersion{}, false
		}
		n[i] = v
	}
	v := runcVersion{major: n[0], minor: n[1], patch: n[2], rc: -1}
	if hasPre {
		num, ok := strings.CutPrefix(pre, "rc")
		rc, err := strconv.Atoi(strings.TrimPrefix(num, "."))
		if !ok || err != nil || rc < 0 {
			return runcVersion{}, false
		}
		v.rc = rc
	}
	return v, true
}

// less orders versions; a release candidate comes before its release.
func (v runcVersion) less(o runcVersion) bool {
	if v.major != o.major {
		return v.major < o.major
	}
	if v.minor != o.minor {
		return v.minor < o.minor
	}
	if v.patch != o.patch {
		return v.patch < o.patch
	}
	if (v.rc < 0) != (o.rc < 0) {
		return v.rc >= 0
	}
	return v.rc < o.rc
}

// hasFix applies the rule of runcFixes to the first fixed release per line.
func (v runcVersion) hasFix(fixed []string) bool {
	newest := runcVersion{}
	for _, f := range fixed {
		fv, _ := parseRuncVersion(f)
		if fv.major == v.major && fv.minor == v.minor {
			return !v.less(fv)
		}
		if newest.less(fv) {
			newest = fv
		}
	}
	return newest.major < v.major || (newest.major == v.major && newest.minor < v.minor)
}
