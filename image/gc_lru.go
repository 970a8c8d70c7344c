package image

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DiskPressure is the disk-pressure part of the gc block: when a
// filesystem holding containerd's content store or snapshots is fuller
// than High percent, unused images are removed, least recently used first,
// until every one is at or below Low percent.
type DiskPressure struct {
	High float64 // gc.disk_high; 0 = off
	Low  float64 // gc.disk_low
	// Interval (gc.disk_check_interval) is the slow timer of the check,
	// which also runs after every image a task gets.
	Interval time.Duration
	// Paths (gc.disk_paths) are the directories to measure when
	// containerd names no root for its content store or snapshotter.
	Paths []string
}

// DefaultDiskCheckInterval is gc.disk_check_interval's default.
const DefaultDiskCheckInterval = time.Minute

// ParseWatermark reads a disk watermark: a percentage of a filesystem, as
// "90%", "90" or "87.5". field names the option in the error.
func ParseWatermark(field, v string) (float64, error) {
	s := strings.TrimSpace(v)
	s = strings.TrimSpace(strings.TrimSuffix(s, "%"))
	p, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(p) || p <= 0 || p >= 100 {
		return 0, fmt.Errorf("%s: %q is not a percentage of the filesystem above 0 and below 100, such as \"90%%\"", field, v)
	}
	return p, nil
}

// ParseDiskPressure reads gc.disk_high and gc.disk_low: both or neither
// (off), with low below high.
func ParseDiskPressure(high, low string) (DiskPressure, error) {
	if high == "" && low == "" {
		return DiskPressure{}, nil
	}
	if high == "" || low == "" {
		return DiskPressure{}, fmt.Errorf("gc.disk_high and gc.disk_low: set both or neither, got disk_high = %q and disk_low = %q", high, low)
	}
	h, err := ParseWatermark("gc.disk_high", high)
	if err != nil {
		return DiskPressure{}, err
	}
	l, err := ParseWatermark("gc.disk_low", low)
	if err != nil {
		return DiskPressure{}, err
	}
	if l >= h {
		return DiskPressure{}, fmt.Errorf("gc.disk_low: %q must be below gc.disk_high %q", low, high)
	}
	return DiskPressure{High: h, Low: l, Interval: DefaultDiskCheckInterval}, nil
}

// imageUse is what disk-pressure GC knows of one image.
type imageUse struct {
	name     string
	lastUsed time.Time // the last start or end of a task with it, else its record's last update
	warmed   time.Time // when a pull_only task last got it; zero if never
	pinned   bool
	inUse    bool // a container uses it or a start holds it
	held     bool // warmed less than gc.image_delay ago
	delayed  bool // its gc.image_delay runs: a task ended with it lately, or the plugin started lately
}

// evictionOrder lists the images disk pressure may remove: first those
// whose gc.image_delay does not run, then those whose delay runs, each
// least recently used first (ties by name). Pinned and in-use images, and
// images warmed within their delay, are never listed.
func evictionOrder(imgs []imageUse) []imageUse {
	var out []imageUse
	for _, i := range imgs {
		if !i.pinned && !i.inUse && !i.held {
			out = append(out, i)
		}
	}
	slices.SortStableFunc(out, func(a, b imageUse) int {
		if a.delayed != b.delayed {
			if a.delayed {
				return 1
			}
			return -1
		}
		if c := a.lastUsed.Compare(b.lastUsed); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// reclaim removes the images of order, in order, while measure reports a
// usage above low, measuring again after each removal (containerd deletes
// an image's content and snapshots with it). It returns the last usage
// measured; remove reports whether it removed the image (a check just
// before may keep it).
func reclaim(order []imageUse, low float64, measure func() (float64, error), remove func(imageUse) (bool, error)) (float64, error) {
	used, err := measure()
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, img := range order {
		if used <= low {
			break
		}
		removed, err := remove(img)
		if err != nil {
			errs = append(errs, err) // the next image may still go
			continue
		}
		if !removed {
			continue
		}
		if used, err = measure(); err != nil {
			return 0, errors.Join(append(errs, err)...)
		}
	}
	return used, errors.Join(errs...)
}
