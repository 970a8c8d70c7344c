package bench

import (
	"fmt"
	"io"
	"strings"
)

// DiskGC is the disk-pressure figure: rounds in which one pull takes a
// small filesystem holding containerd's root past gc.disk_high.
type DiskGC struct {
	FilesystemMiB int           `json:"filesystem_mib"`
	ImageMiB      int           `json:"image_mib"` // each filler image's incompressible layer
	High          float64       `json:"disk_high_percent"`
	Low           float64       `json:"disk_low_percent"`
	Rounds        []DiskGCRound `json:"rounds"`
}

// DiskGCRound is one fill and the pull past the high watermark.
type DiskGCRound struct {
	// Filled is the usage with the unused images, before the pull.
	Filled float64 `json:"filled_percent"`
	// Before is the usage the GC pass measured first (after the pull),
	// After the usage once it ended.
	Before float64 `json:"gc_before_percent"`
	After  float64 `json:"gc_after_percent"`
	// Removed lists the filler images the pass removed.
	Removed []string `json:"removed"`
	// BelowLow: the disk was at or below gc.disk_low after that one pull.
	BelowLow bool `json:"below_low_after_one_pull"`
	// PassMS is the pass's duration, as the driver logs it.
	PassMS float64 `json:"gc_pass_ms"`
	// RunningKept: the running task's container, process and image were
	// all still there.
	RunningKept bool `json:"running_task_kept"`
}

// Met reports whether every round ended at or below the low watermark
// with the running task untouched.
func (g *DiskGC) Met() bool {
	for _, r := range g.Rounds {
		if !r.BelowLow || !r.RunningKept {
			return false
		}
	}
	return len(g.Rounds) > 0
}

// writeTable prints the rounds below the report's table.
func (g *DiskGC) writeTable(w io.Writer) {
	fmt.Fprintf(w, "disk-pressure GC: %d MiB ext4 holding containerd's root, images of %d MiB, gc.disk_high %.1f%%, gc.disk_low %.1f%%\n",
		g.FilesystemMiB, g.ImageMiB, g.High, g.Low)
	for i, r := range g.Rounds {
		fmt.Fprintf(w, "  round %d: filled %.1f%%, pull -> %.1f%%, GC pass (%s ms) removed %s -> %.1f%% (below low: %t), running task kept: %t\n",
			i+1, r.Filled, r.Before, num(r.PassMS), strings.Join(r.Removed, ", "), r.After, r.BelowLow, r.RunningKept)
	}
	fmt.Fprintf(w, "  target (every round below low after one pull, running task kept): %s\n", map[bool]string{true: "ok", false: "MISSED"}[g.Met()])
}
