package testbed

import (
	"slices"
	"testing"
)

func TestCPUList(t *testing.T) {
	for _, tc := range []struct {
		in    string
		cores []int
		out   string
		bad   bool
	}{
		{"0-1\n", []int{0, 1}, "0,1", false},
		{"0-2,5", []int{0, 1, 2, 5}, "0,1,2,5", false},
		{"3", []int{3}, "3", false},
		{"\n", nil, "", false},
		{"2-1", nil, "", true},
		{"a", nil, "", true},
		{"0-", nil, "", true},
	} {
		cores, err := ParseCPUList(tc.in)
		if (err != nil) != tc.bad || !slices.Equal(cores, tc.cores) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v (error %v)", tc.in, cores, err, tc.cores, tc.bad)
			continue
		}
		if got := FormatCPUList(cores); !tc.bad && got != tc.out {
			t.Errorf("FormatCPUList(%v) = %q, want %q", cores, got, tc.out)
		}
	}
}

func TestAllowedCPUs(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		min       int
		cpus      []int
		bad       bool
	}{
		{"all alike", "/proc/1/status:Cpus_allowed_list:\t0\n/proc/7/status:Cpus_allowed_list:\t0\n", 2, []int{0}, false},
		{"ranges", "/proc/1/status:Cpus_allowed_list:\t0-1\n/proc/9/status:Cpus_allowed_list:\t0,1\n", 2, []int{0, 1}, false},
		{"differ", "/proc/1/status:Cpus_allowed_list:\t0\n/proc/7/status:Cpus_allowed_list:\t0-1\n", 2, nil, true},
		{"too few", "/proc/1/status:Cpus_allowed_list:\t0\n", 2, nil, true},
		{"no init", "/proc/5/status:Cpus_allowed_list:\t0\n/proc/7/status:Cpus_allowed_list:\t0\n", 2, nil, true},
		{"garbage", "/proc/1/status:Cpus_allowed_list:\tx\n/proc/7/status:Cpus_allowed_list:\t0\n", 2, nil, true},
		{"empty", "", 1, nil, true},
	} {
		cpus, err := AllowedCPUs(tc.out, tc.min)
		if (err != nil) != tc.bad || !slices.Equal(cpus, tc.cpus) {
			t.Errorf("%s: got %v, %v; want %v (error %v)", tc.name, cpus, err, tc.cpus, tc.bad)
		}
	}
}
