package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []float64{7}, Summary{N: 1, Min: 7, Median: 7, P95: 7}},
		{"odd, unsorted", []float64{5, 1, 3}, Summary{N: 3, Min: 1, Median: 3, P95: 5}},
		{"even", []float64{4, 1, 3, 2}, Summary{N: 4, Min: 1, Median: 2.5, P95: 4}},
		// nearest rank: the 95th of 20 values is the 19th
		{"twenty", []float64{20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1},
			Summary{N: 20, Min: 1, Median: 10.5, P95: 19}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summarize(tc.in); got != tc.want {
				t.Fatalf("Summarize(%v) = %+v, expected %+v", tc.in, got, tc.want)
			}
		})
	}
	in := []float64{3, 1, 2}
	Summarize(in)
	if in[0] != 3 || in[1] != 1 {
		t.Fatalf("Summarize reordered its input: %v", in)
	}
}

func TestRowMet(t *testing.T) {
	base := &Summary{N: 3, Min: 90, Median: 100, P95: 110}
	for _, tc := range []struct {
		name    string
		row     Row
		met, ok bool
		ratio   float64
	}{
		{"ratio met", Row{Driver: Summary{N: 3, Median: 110}, Baseline: base, Target: Target{TargetRatio, 1.15}}, true, true, 1.1},
		{"ratio missed", Row{Driver: Summary{N: 3, Median: 120}, Baseline: base, Target: Target{TargetRatio, 1.15}}, false, true, 1.2},
		{"ratio without baseline", Row{Driver: Summary{N: 3, Median: 120}, Target: Target{TargetRatio, 1.15}}, false, false, 0},
		{"median met", Row{Driver: Summary{N: 1, Median: 5.5}, Target: Target{TargetMedian, 6}}, true, true, 0},
		{"p95 missed", Row{Driver: Summary{N: 9, Median: 5, P95: 25}, Target: Target{TargetP95, 20}}, false, true, 0},
		{"p95 without data", Row{Target: Target{TargetP95, 20}}, false, false, 0},
		{"no target", Row{Driver: Summary{N: 3, Median: 1}, Baseline: base}, false, false, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			met, ok := tc.row.Met()
			if met != tc.met || ok != tc.ok {
				t.Fatalf("Met() = %v, %v; expected %v, %v", met, ok, tc.met, tc.ok)
			}
			if r := tc.row.Ratio(); r < tc.ratio-1e-9 || r > tc.ratio+1e-9 {
				t.Fatalf("Ratio() = %v, expected %v", r, tc.ratio)
			}
		})
	}
}

func TestReportTableAndJSON(t *testing.T) {
	rep := &Report{
		Machine: Machine{Host: "box", CPU: "cpu", Cores: 2, Kernel: "6.1", Containerd: "v2.2.1"},
		Rows: []Row{
			{Name: "start", Unit: "ms", Driver: Summary{N: 5, Min: 50, Median: 55.5, P95: 70},
				Baseline: &Summary{N: 5, Min: 48, Median: 50, P95: 60}, BaselineName: "containerd client",
				Target: Target{TargetRatio, 1.15}},
			{Name: "exit to WaitTask", Unit: "ms", Driver: Summary{N: 5, Min: 1, Median: 2, P95: 30},
				Target: Target{TargetP95, 20}, Note: "busy machine"},
		},
		Findings: []string{"profile: spec generation 3%"},
	}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"machine: box, cpu, 2 cores",
		"50.0 / 55.5 / 70.0 (n=5)",
		"48.0 / 50.0 / 60.0 (n=5) (containerd client)",
		"1.11",
		"ratio <= 1.15 ok",
		"p95 <= 20 MISSED",
		"exit to WaitTask: busy machine",
		"- profile: spec generation 3%",
		"targets met: 1 of 2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	path := filepath.Join(t.TempDir(), "out", "results.json")
	if err := rep.Write(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != 2 || back.Rows[0].Baseline == nil || back.Rows[0].Baseline.Median != 50 ||
		back.Rows[1].Baseline != nil || back.Rows[1].Target != (Target{TargetP95, 20}) {
		t.Fatalf("JSON round trip lost data: %+v", back)
	}
	txt, err := os.ReadFile(filepath.Join(filepath.Dir(path), "results.txt"))
	if err != nil || string(txt) != out {
		t.Fatalf("results.txt differs from the table (%v):\n%s", err, txt)
	}
}

func TestOrders(t *testing.T) {
	for n, want := range map[int]int{0: 0, 1: 1, 2: 2, 3: 6, 4: 24} {
		orders := Orders(n)
		if len(orders) != want {
			t.Fatalf("Orders(%d): %d orders, want %d", n, len(orders), want)
		}
		seen := map[string]bool{}
		for _, o := range orders {
			if len(o) != n {
				t.Fatalf("Orders(%d): order %v has %d places", n, o, len(o))
			}
			in := make([]bool, n)
			for _, k := range o {
				if k < 0 || k >= n || in[k] {
					t.Fatalf("Orders(%d): %v is not an order of 0..%d", n, o, n-1)
				}
				in[k] = true
			}
			key := fmt.Sprint(o)
			if seen[key] {
				t.Fatalf("Orders(%d): %v twice", n, o)
			}
			seen[key] = true
		}
	}
}
