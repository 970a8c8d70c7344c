package driver

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"
)

// Helpers shared by the config parsers of every concern.

// Isolation modes for pid_mode / ipc_mode and their plugin defaults.
const (
	modePrivate = "private"
	modeHost    = "host"
)

func checkMode(field, v string) error {
	if v != modePrivate && v != modeHost {
		return fmt.Errorf("%s: %q is not %q or %q", field, v, modePrivate, modeHost)
	}
	return nil
}

func positiveDuration(field, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration such as \"30s\" or \"5m\"", field, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: %q must be greater than zero", field, v)
	}
	return d, nil
}

// flattenMaps merges HCL's list-of-maps form of a map attribute.
func flattenMaps(field string, ms []map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			if k == "" {
				return nil, fmt.Errorf("%s: keys must not be empty", field)
			}
			if old, ok := out[k]; ok && old != v {
				return nil, fmt.Errorf("%s: %q is given twice with different values", field, k)
			}
			out[k] = v
		}
	}
	return out, nil
}

// wholeNumber reads a numeric option as Nomad's msgpack encoding delivers
// it: an integer, a float, or a string for a number no float64 holds
// exactly. Only a whole number fits; anything else is an error that names
// the option, not a decoding failure of the whole config.
func wholeNumber(field string, v any) (int64, error) {
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case uint64:
		if n <= math.MaxInt64 {
			return int64(n), nil
		}
	case float64:
		if n == math.Trunc(n) && n >= math.MinInt64 && n < math.MaxInt64 {
			return int64(n), nil
		}
	}
	return 0, fmt.Errorf("%s: %v is not a whole number in range", field, v)
}

// underAny reports whether path is one of the given paths or below one,
// each resolved through its symlinks.
func underAny(path string, prefixes []string) bool {
	for _, p := range prefixes {
		pr, err := filepath.EvalSymlinks(p)
		if err == nil && isUnder(path, pr) {
			return true
		}
	}
	return false
}

func isUnder(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
