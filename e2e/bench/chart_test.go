package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// svgNode is any element of a parsed SVG, with its attributes and children.
type svgNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []svgNode  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// walk calls f on n and every element below it.
func (n svgNode) walk(f func(svgNode)) {
	f(n)
	for _, c := range n.Children {
		c.walk(f)
	}
}

func readFixture(t *testing.T) *Report {
	t.Helper()
	data, err := os.ReadFile("testdata/readme-results.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

// TestReportChart renders the chart of a results.json as Write does and
// parses it as SVG: a panel per unit, and per figure a driver and a
// baseline series whose median mark lies inside its min-to-p95 bar, in the
// order of the values.
func TestReportChart(t *testing.T) {
	rep := readFixture(t)
	path := filepath.Join(t.TempDir(), "results.json")
	if err := rep.Write(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(path), "results.svg"))
	if err != nil {
		t.Fatalf("Write wrote no chart: %v", err)
	}
	var root svgNode
	if err := xml.Unmarshal(data, &root); err != nil {
		t.Fatalf("the chart is not XML: %v\n%s", err, data)
	}
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Fatalf("root element is %v, want svg in the SVG namespace", root.XMLName)
	}
	if w, err := strconv.Atoi(root.attr("width")); err != nil || w <= 0 {
		t.Fatalf("width %q", root.attr("width"))
	}

	var units []string
	series := map[string]svgNode{}
	root.walk(func(n svgNode) {
		switch n.attr("class") {
		case "panel":
			units = append(units, n.attr("data-unit"))
		case "series":
			series[n.attr("data-figure")+"/"+n.attr("data-series")] = n
		}
	})
	if got := strings.Join(units, ","); got != "ms,starts/s,MiB" {
		t.Errorf("panels %q, want ms,starts/s,MiB", got)
	}
	want := 0
	for _, r := range rep.Rows {
		for name, s := range map[string]*Summary{"driver": &r.Driver, "baseline": r.Baseline} {
			want++
			n, ok := series[r.Name+"/"+name]
			if !ok {
				t.Errorf("no %s series for %q", name, r.Name)
				continue
			}
			if n.attr("data-median") != strconv.FormatFloat(s.Median, 'g', -1, 64) {
				t.Errorf("%s %s: data-median %q, want %v", r.Name, name, n.attr("data-median"), s.Median)
			}
			checkBar(t, r.Name+" "+name, n)
		}
	}
	if len(series) != want {
		t.Errorf("%d series, want %d", len(series), want)
	}
	// on the log axis of the ms panel, the 1.4 s wall time lies right of
	// the 4 ms exit
	wall := medianX(t, series["20 concurrent starts, wall/driver"])
	exit := medianX(t, series["exit to WaitTask result/driver"])
	if !(exit < wall) {
		t.Errorf("exit median at x=%v, wall median at x=%v", exit, wall)
	}
}

// checkBar: the bar's rect spans the min and the p95, the median mark lies
// within it.
func checkBar(t *testing.T, what string, n svgNode) {
	t.Helper()
	var rect, mark *svgNode
	for i := range n.Children {
		switch c := &n.Children[i]; {
		case c.XMLName.Local == "rect":
			rect = c
		case c.XMLName.Local == "line" && c.attr("class") == "median":
			mark = c
		}
	}
	if rect == nil || mark == nil {
		t.Errorf("%s: the series lacks its bar or its median mark", what)
		return
	}
	x0, w, xm := float(t, rect.attr("x")), float(t, rect.attr("width")), float(t, mark.attr("x1"))
	if xm < x0-0.1 || xm > x0+w+0.1 {
		t.Errorf("%s: median at x=%v outside the bar [%v, %v]", what, xm, x0, x0+w)
	}
}

func medianX(t *testing.T, n svgNode) float64 {
	t.Helper()
	for _, c := range n.Children {
		if c.attr("class") == "median" {
			return float(t, c.attr("x1"))
		}
	}
	t.Fatalf("no median mark in %v", n.attr("data-figure"))
	return 0
}

func float(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return f
}

// TestREADMEChart keeps docs/bench.svg, the chart the README shows, the
// rendering of the figures in its table (testdata/readme-results.json).
// BENCH_CHART_UPDATE=1 writes it.
func TestREADMEChart(t *testing.T) {
	var b bytes.Buffer
	if err := readFixture(t).WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	const committed = "../../docs/bench.svg"
	if os.Getenv("BENCH_CHART_UPDATE") == "1" {
		if err := os.WriteFile(committed, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatalf("%v (BENCH_CHART_UPDATE=1 writes it)", err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("%s is not the chart of testdata/readme-results.json; run BENCH_CHART_UPDATE=1 go test -run TestREADMEChart ./e2e/bench/", committed)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "](docs/bench.svg)") {
		t.Fatal("README.md does not show docs/bench.svg")
	}
}
