package driver

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rlimitNames are docker's ulimit names; each is RLIMIT_ and its upper
// case in the OCI spec.
var rlimitNames = []string{"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}

// unlimited is RLIM_INFINITY.
const unlimited = math.MaxUint64

// parseUlimits reads docker's ulimit map, `name = "soft:hard"` or
// `name = "limit"` (soft and hard alike), into rlimits sorted by type.
func parseUlimits(ulimits map[string]string) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	for name, v := range ulimits {
		n := strings.TrimPrefix(strings.ToLower(name), "rlimit_")
		if !slices.Contains(rlimitNames, n) {
			return nil, fmt.Errorf("ulimit: %q is not a resource limit; allowed are %s", name, strings.Join(rlimitNames, ", "))
		}
		soft, hard, err := parseUlimitValue(name, v)
		if err != nil {
			return nil, err
		}
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(n), Soft: soft, Hard: hard})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	for i := 1; i < len(out); i++ {
		if out[i].Type == out[i-1].Type {
			return nil, fmt.Errorf("ulimit: %s is given twice", strings.ToLower(strings.TrimPrefix(out[i].Type, "RLIMIT_")))
		}
	}
	return out, nil
}

func parseUlimitValue(name, v string) (soft, hard uint64, err error) {
	softS, hardS, pair := strings.Cut(v, ":")
	if !pair {
		hardS = softS
	}
	if soft, err = ulimitNumber(softS); err == nil {
		hard, err = ulimitNumber(hardS)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("ulimit: %s = %q must be \"soft:hard\" or one limit for both, each a non-negative integer or \"unlimited\", such as %q", name, v, "1024:2048")
	}
	if soft > hard {
		return 0, 0, fmt.Errorf("ulimit: %s = %q has a soft limit above its hard limit", name, v)
	}
	return soft, hard, nil
}

func ulimitNumber(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "unlimited" || s == "-1" {
		return unlimited, nil
	}
	return strconv.ParseUint(s, 10, 64)
}
