package bench

import (
	"strings"
	"testing"
)

func TestParsePhaseLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want map[string]float64
		ok   bool
	}{
		{"phases", `{"@level":"debug","@message":"task start phases","container_id":"web-1","plan_ms":0.31,"cni_add_ms":120.5,"total_ms":300}`,
			map[string]float64{"plan": 0.31, "cni_add": 120.5, "total": 300}, true},
		{"other message", `{"@message":"created container and task","pid":12}`, nil, false},
		{"not json", `2026-12-07T06:46:10Z [DEBUG] task start phases: plan_ms=1`, nil, false},
		{"a _ms key that is no number", `{"@message":"task start phases","odd_ms":"x","total_ms":2}`,
			map[string]float64{"total": 2}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParsePhaseLine([]byte(tc.line))
			if ok != tc.ok || len(got) != len(tc.want) {
				t.Fatalf("ParsePhaseLine = %v, %v; expected %v, %v", got, ok, tc.want, tc.ok)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, expected %v", k, got[k], v)
				}
			}
		})
	}
}

func TestSummarizePhases(t *testing.T) {
	starts := []map[string]float64{
		{"total": 300, "netns": 2, "cni_add": 100, "zeta": 1, "image": 5},
		{"total": 200, "netns": 4, "image": 7},
		{"total": 250, "netns": 3, "cni_add": 140, "image": 6},
	}
	set := SummarizePhases("bridge", starts)
	var names []string
	for _, p := range set.Phases {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, " "); got != "image netns cni_add total zeta" {
		t.Fatalf("phases in order %q", got)
	}
	want := map[string]Summary{
		"image":   {N: 3, Min: 5, Median: 6, P95: 7},
		"cni_add": {N: 2, Min: 100, Median: 120, P95: 140},
		"total":   {N: 3, Min: 200, Median: 250, P95: 300},
	}
	for _, p := range set.Phases {
		if w, ok := want[p.Name]; ok && p.Summary != w {
			t.Errorf("%s: %+v, expected %+v", p.Name, p.Summary, w)
		}
	}
	var b strings.Builder
	rep := &Report{StartPhases: []PhaseSet{set}}
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if line := "start phases, bridge (median ms of 3 starts): image 6.00, netns 3.00, cni_add 120, total 250, zeta 1.00"; !strings.Contains(b.String(), line) {
		t.Errorf("table lacks %q:\n%s", line, b.String())
	}
}
