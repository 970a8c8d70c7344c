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
