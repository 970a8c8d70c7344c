package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// The chart's geometry and colours.
const (
	chartWidth   = 820
	chartLabelW  = 290 // the figure names, left of the plot
	chartRight   = 30
	chartRowH    = 34
	chartBarGap  = 12 // between a row's driver and baseline bars
	chartPanelH  = 46 // a panel's title and axis
	chartLegendH = 40
	driverColor  = "#1f6fb4"
	baseColor    = "#9a9a9a"
)

// unitTitles say what a unit measures.
var unitTitles = map[string]string{"ms": "latency", "MiB": "memory per task", "starts/s": "start rate", "KiB": "disk", "s": "lazy pulling, start to exit"}

// panel is the rows of one unit, drawn on one axis.
type panel struct {
	unit   string
	rows   []Row
	lo, hi float64
	log    bool
}

// panels groups the rows with data by unit, in the order the units first
// appear. A unit whose values span more than a factor of 20 gets a log
// axis, so that a 3 ms exit and a 1.5 s wall time can be read side by side.
func (rep *Report) panels() []*panel {
	var out []*panel
	byUnit := map[string]*panel{}
	for _, r := range rep.Rows {
		if r.Driver.N == 0 {
			continue
		}
		p := byUnit[r.Unit]
		if p == nil {
			p = &panel{unit: r.Unit, lo: math.Inf(1), hi: math.Inf(-1)}
			byUnit[r.Unit] = p
			out = append(out, p)
		}
		p.rows = append(p.rows, r)
		for _, s := range []*Summary{&r.Driver, r.Baseline} {
			if s != nil && s.N > 0 {
				p.lo, p.hi = math.Min(p.lo, s.Min), math.Max(p.hi, s.P95)
			}
		}
	}
	for _, p := range out {
		if p.lo > 0 && p.hi/p.lo > 20 {
			p.log = true
			p.lo, p.hi = math.Pow(10, math.Floor(math.Log10(p.lo))), math.Pow(10, math.Ceil(math.Log10(p.hi)))
		} else {
			p.lo, p.hi = 0, niceCeil(p.hi*1.05)
		}
	}
	return out
}

// niceCeil rounds x up to 1, 2 or 5 times a power of ten.
func niceCeil(x float64) float64 {
	if x <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= x {
			return m * e
		}
	}
	return 10 * e
}

// x maps a value to the plot's horizontal position.
func (p *panel) x(v float64) float64 {
	plot := float64(chartWidth - chartLabelW - chartRight)
	var f float64
	if p.log {
		f = (math.Log10(math.Max(v, p.lo)) - math.Log10(p.lo)) / (math.Log10(p.hi) - math.Log10(p.lo))
	} else {
		f = (v - p.lo) / (p.hi - p.lo)
	}
	return float64(chartLabelW) + f*plot
}

// ticks are the axis labels: the powers of ten (and 2 and 5 times them
// when there are few) on a log axis, five steps on a linear one.
func (p *panel) ticks() []float64 {
	var ts []float64
	if !p.log {
		for i := 0; i <= 5; i++ {
			ts = append(ts, p.lo+float64(i)*(p.hi-p.lo)/5)
		}
		return ts
	}
	decades := math.Log10(p.hi) - math.Log10(p.lo)
	for e := p.lo; e <= p.hi*1.0001; e *= 10 {
		ts = append(ts, e)
		if decades <= 3 && e*10 <= p.hi*1.0001 {
			ts = append(ts, 2*e, 5*e)
		}
	}
	return ts
}

// WriteSVG draws the report as an SVG chart: per unit a panel with, per
// figure, the driver's and the baseline's min-to-p95 range as a bar and
// the median as a tick across it.
func (rep *Report) WriteSVG(w io.Writer) error {
	panels := rep.panels()
	height := chartLegendH
	for _, p := range panels {
		height += chartPanelH + len(p.rows)*chartRowH
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	m := rep.Machine
	fmt.Fprintf(&b, `<text x="10" y="16" font-weight="bold">%s</text>`+"\n",
		esc(fmt.Sprintf("driver vs baseline: min to p95, median marked (%d cores, containerd %s, runc %s)", m.Cores, m.Containerd, m.Runc)))
	legend(&b, 10, 30, driverColor, "driver")
	legend(&b, 110, 30, baseColor, "baseline (the same work without the driver)")
	y := chartLegendH
	for _, p := range panels {
		y = p.draw(&b, y)
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func legend(b *bytes.Buffer, x, y int, color, label string) {
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="14" height="6" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, y-6, color, x+18, y, esc(label))
}

// draw writes the panel from y down and returns where the next begins.
func (p *panel) draw(b *bytes.Buffer, y int) int {
	scale := "linear"
	if p.log {
		scale = "log scale"
	}
	fmt.Fprintf(b, `<g class="panel" data-unit="%s">`+"\n", esc(p.unit))
	title := p.unit
	if t, ok := unitTitles[p.unit]; ok {
		title = t + ", " + p.unit
	}
	fmt.Fprintf(b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+16, esc(title+" ("+scale+")"))
	top, bottom := y+24, y+24+len(p.rows)*chartRowH
	for _, t := range p.ticks() {
		x := p.x(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e4e4"/>`, x, top, x, bottom)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%g</text>`+"\n", x, bottom+14, t)
	}
	for i, r := range p.rows {
		ry := top + i*chartRowH
		fmt.Fprintf(b, `<text x="10" y="%d">%s</text>`+"\n", ry+16, esc(r.Name))
		bar(b, p, r.Name, "driver", "driver", r.Driver, ry+8, driverColor)
		if r.Baseline != nil && r.Baseline.N > 0 {
			bar(b, p, r.Name, "baseline", r.BaselineName, *r.Baseline, ry+8+chartBarGap, baseColor)
		}
	}
	b.WriteString("</g>\n")
	return bottom + chartPanelH - 24
}

// bar draws one series of one figure; its data attributes carry the
// figures, its title the text a viewer shows on hover.
func bar(b *bytes.Buffer, p *panel, figure, series, label string, s Summary, y int, color string) {
	x0, xm, x1 := p.x(s.Min), p.x(s.Median), p.x(s.P95)
	fmt.Fprintf(b, `<g class="series" data-figure="%s" data-series="%s" data-min="%g" data-median="%g" data-p95="%g">`,
		esc(figure), series, s.Min, s.Median, s.P95)
	fmt.Fprintf(b, `<title>%s</title>`, esc(fmt.Sprintf("%s, %s: %s %s", figure, label, formatSummary(s), p.unit)))
	fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="8" fill="%s" fill-opacity="0.55"/>`, x0, y-4, math.Max(x1-x0, 1), color)
	fmt.Fprintf(b, `<line class="median" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2.5"/>`, xm, y-6, xm, y+6, color)
	b.WriteString("</g>\n")
}

func esc(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return sb.String()
}
