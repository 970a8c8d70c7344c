// Package bench measures the driver against raw baselines (the same
// containerd calls made directly, go-cni, `ctr pull`) on one hermetic
// containerd in one run, and reports each figure as min / median / p95 with
// the ratio driver / baseline. The measurements are the `bench`-tagged tests
// (`make bench`); this file holds the statistics, the table and the JSON
// they are reported in, chart.go the SVG chart.
package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// Summary is a sample reduced to its minimum, median and 95th percentile
// (nearest rank).
type Summary struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	P95    float64 `json:"p95"`
}

// Summarize reduces xs; an empty sample is the zero Summary.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return Summary{N: len(s), Min: s[0], Median: median(s), P95: rank(s, 0.95)}
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// rank is the nearest-rank percentile p (0 < p <= 1) of a sorted sample.
func rank(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Target kinds: what a row's figure is held against.
const (
	TargetRatio  = "ratio"  // median driver / median baseline at most Max
	TargetMedian = "median" // the driver's median at most Max (in the row's unit)
	TargetP95    = "p95"    // the driver's p95 at most Max (in the row's unit)
)

// Target is a row's goal; the zero Target is none.
type Target struct {
	Kind string  `json:"kind,omitempty"`
	Max  float64 `json:"max,omitempty"`
}

func (t Target) String() string {
	switch t.Kind {
	case TargetRatio:
		return fmt.Sprintf("ratio <= %.2f", t.Max)
	case TargetMedian:
		return fmt.Sprintf("median <= %g", t.Max)
	case TargetP95:
		return fmt.Sprintf("p95 <= %g", t.Max)
	}
	return "-"
}

// Row is one figure: the driver's sample and, where there is one, the
// baseline's, measured in the same run.
type Row struct {
	Name     string   `json:"name"`
	Unit     string   `json:"unit"`
	Driver   Summary  `json:"driver"`
	Baseline *Summary `json:"baseline,omitempty"`
	// BaselineName says what the baseline is ("containerd client", "ctr pull").
	BaselineName string `json:"baseline_name,omitempty"`
	Target       Target `json:"target"`
	Note         string `json:"note,omitempty"`
}

// Ratio is the driver's median over the baseline's; 0 without a baseline.
func (r Row) Ratio() float64 {
	if r.Baseline == nil || r.Baseline.Median == 0 {
		return 0
	}
	return r.Driver.Median / r.Baseline.Median
}

// Met reports whether the row meets its target; ok is false when it has
// none (or no data to judge).
func (r Row) Met() (met, ok bool) {
	switch r.Target.Kind {
	case TargetRatio:
		ratio := r.Ratio()
		return ratio > 0 && ratio <= r.Target.Max, ratio > 0
	case TargetMedian:
		return r.Driver.N > 0 && r.Driver.Median <= r.Target.Max, r.Driver.N > 0
	case TargetP95:
		return r.Driver.N > 0 && r.Driver.P95 <= r.Target.Max, r.Driver.N > 0
	}
	return false, false
}

// Report is what `make bench` prints and writes.
type Report struct {
	Machine Machine `json:"machine"`
	Rows    []Row   `json:"rows"`
	// Findings are lines the run wants kept with its figures (what the
	// profile showed, what was skipped).
	Findings []string `json:"findings,omitempty"`
	// DiskGC is the disk-pressure figure, when it was measured.
	DiskGC *DiskGC `json:"disk_gc,omitempty"`
	// StartPhases are the driver's starts broken down by phase (the
	// profile figure).
	StartPhases []PhaseSet `json:"start_phases,omitempty"`
}

// Machine is where the figures come from.
type Machine struct {
	Host       string  `json:"host"`
	CPU        string  `json:"cpu"`
	Cores      int     `json:"cores"`
	MemoryMiB  int     `json:"memory_mib"`
	Kernel     string  `json:"kernel"`
	Containerd string  `json:"containerd"`
	Runc       string  `json:"runc"`
	Go         string  `json:"go"`
	LoadBefore float64 `json:"load_before"` // 1-minute load average when the run began
	LoadAfter  float64 `json:"load_after"`
	Date       string  `json:"date"`
}

// Met counts the rows with a target and those among them that meet it.
func (rep *Report) Met() (met, judged int) {
	for _, r := range rep.Rows {
		if m, ok := r.Met(); ok {
			judged++
			if m {
				met++
			}
		}
	}
	if rep.DiskGC != nil {
		judged++
		if rep.DiskGC.Met() {
			met++
		}
	}
	return met, judged
}

// WriteTable prints the report as an aligned table.
func (rep *Report) WriteTable(w io.Writer) error {
	m := rep.Machine
	fmt.Fprintf(w, "machine: %s, %s, %d cores, %d MiB, kernel %s, containerd %s, runc %s, %s, load %.2f -> %.2f, %s\n",
		m.Host, m.CPU, m.Cores, m.MemoryMiB, m.Kernel, m.Containerd, m.Runc, m.Go, m.LoadBefore, m.LoadAfter, m.Date)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tunit\tdriver min / median / p95\tbaseline min / median / p95\tratio\ttarget\t")
	for _, r := range rep.Rows {
		base, ratio := "-", "-"
		if r.Baseline != nil {
			base = formatSummary(*r.Baseline) + " (" + r.BaselineName + ")"
			ratio = fmt.Sprintf("%.2f", r.Ratio())
		}
		target := r.Target.String()
		if met, ok := r.Met(); ok {
			target += map[bool]string{true: " ok", false: " MISSED"}[met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, r.Unit, formatSummary(r.Driver), base, ratio, target)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Name, r.Note)
		}
	}
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "  - %s\n", f)
	}
	for _, s := range rep.StartPhases {
		s.writeTable(w)
	}
	if rep.DiskGC != nil {
		rep.DiskGC.writeTable(w)
	}
	met, judged := rep.Met()
	_, err := fmt.Fprintf(w, "targets met: %d of %d\n", met, judged)
	return err
}

func formatSummary(s Summary) string {
	if s.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s / %s (n=%d)", num(s.Min), num(s.Median), num(s.P95), s.N)
}

// num prints three significant figures or more: 0.812, 12.3, 153.
func num(x float64) string {
	switch a := math.Abs(x); {
	case a >= 100:
		return fmt.Sprintf("%.0f", x)
	case a >= 10:
		return fmt.Sprintf("%.1f", x)
	case a >= 1:
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.3f", x)
}

// Write saves the report as JSON in path, and the table (.txt) and the
// chart (.svg) next to it.
func (rep *Report) Write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", filepath.Dir(path), err)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("failed to write report: %w", err)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		return err
	}
	txt := strings.TrimSuffix(path, filepath.Ext(path)) + ".txt"
	if err := os.WriteFile(txt, []byte(table.String()), 0o644); err != nil {
		return fmt.Errorf("failed to write table: %w", err)
	}
	var chart bytes.Buffer
	if err := rep.WriteSVG(&chart); err != nil {
		return err
	}
	svg := strings.TrimSuffix(path, filepath.Ext(path)) + ".svg"
	if err := os.WriteFile(svg, chart.Bytes(), 0o644); err != nil {
		return fmt.Errorf("failed to write chart: %w", err)
	}
	return nil
}

// Orders lists every order of n measurements (n! of them), so that rounds
// taking them in turn give each measurement every place and every
// predecessor equally often: what one run leaves behind (dirty pages, a
// garbage collection under way) then weighs on all of them alike.
func Orders(n int) [][]int {
	if n <= 0 {
		return nil
	}
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, rest := range Orders(n - 1) {
		for pos := 0; pos <= len(rest); pos++ {
			o := make([]int, 0, n)
			o = append(o, rest[:pos]...)
			o = append(o, n-1)
			o = append(o, rest[pos:]...)
			out = append(out, o)
		}
	}
	return out
}
