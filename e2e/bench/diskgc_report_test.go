package bench

import (
	"strings"
	"testing"
)

// The disk-pressure figure counts as one target: met when every round
// ended below low with the running task kept; the table says which.
func TestDiskGCMet(t *testing.T) {
	ok := DiskGCRound{Filled: 80, Before: 90, After: 70, Removed: []string{"a", "b"}, BelowLow: true, PassMS: 12.5, RunningKept: true}
	for _, tc := range []struct {
		name   string
		rounds []DiskGCRound
		met    bool
		table  string
	}{
		{"none", nil, false, "MISSED"},
		{"all met", []DiskGCRound{ok, ok}, true, "round 2: filled 80.0%, pull -> 90.0%, GC pass (12.5 ms) removed a, b -> 70.0% (below low: true), running task kept: true"},
		{"above low", []DiskGCRound{ok, {BelowLow: false, RunningKept: true}}, false, "(below low: false)"},
		{"running task touched", []DiskGCRound{{BelowLow: true, RunningKept: false}}, false, "running task kept: false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &DiskGC{FilesystemMiB: 192, ImageMiB: 8, High: 85, Low: 75, Rounds: tc.rounds}
			if g.Met() != tc.met {
				t.Fatalf("Met() = %v, expected %v", g.Met(), tc.met)
			}
			rep := &Report{DiskGC: g}
			met, judged := rep.Met()
			if judged != 1 || (met == 1) != tc.met {
				t.Fatalf("report Met() = %d of %d", met, judged)
			}
			var b strings.Builder
			if err := rep.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tc.table) || !strings.Contains(b.String(), "gc.disk_high 85.0%, gc.disk_low 75.0%") {
				t.Fatalf("table lacks %q:\n%s", tc.table, b.String())
			}
		})
	}
}
