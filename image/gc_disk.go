package image

import (
	"context"
	"fmt"
	"time"
)

// diskStore is what disk-pressure GC asks of containerd besides gcStore.
type diskStore interface {
	// inventory lists every image: pinned, used by a container, and its
	// record's last update as its last use.
	inventory(ctx context.Context) ([]imageUse, error)
	// roots lists the directories of the content store and the
	// snapshotter, as containerd's plugins export them.
	roots(ctx context.Context) ([]string, error)
}

// diskWatch is the state of disk-pressure checks, guarded by GC.mu.
type diskWatch struct {
	store   diskStore // nil: the store cannot say
	on      bool      // watermarks set and image GC on
	timer   timer     // the slow timer
	running bool      // a check is under way
	again   bool      // a check was asked for while one ran
	roots   []string  // found once, then kept
	// measure is usedPercent; tests give a fake disk
	measure func(paths []string) (float64, error)
}

// startDiskWatch arms the slow timer when the watermarks are set.
func (g *GC) startDiskWatch() {
	ds, ok := g.store.(diskStore)
	if !ok {
		return
	}
	g.disk.store = ds
	if g.disk.measure == nil {
		g.disk.measure = usedPercent
	}
	g.disk.on = g.cfg.Enabled && g.cfg.Disk.High > 0
	if !g.disk.on {
		return
	}
	if g.cfg.Disk.Interval <= 0 {
		g.cfg.Disk.Interval = DefaultDiskCheckInterval
	}
	g.disk.timer = g.afterFunc(g.cfg.Disk.Interval, g.tick)
}

// tick is the slow timer: a check, and the timer armed again.
func (g *GC) tick() {
	g.CheckDisk()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.stopped {
		g.disk.timer = g.afterFunc(g.cfg.Disk.Interval, g.tick)
	}
}

// CheckDisk checks the disk usage in the background, and above
// gc.disk_high removes unused images, least recently used first, until it
// is at or below gc.disk_low. A check asked for while one runs runs once
// more after it. It does nothing without watermarks.
func (g *GC) CheckDisk() {
	g.mu.Lock()
	if !g.disk.on || g.stopped {
		g.mu.Unlock()
		return
	}
	if g.disk.running {
		g.disk.again = true
		g.mu.Unlock()
		return
	}
	g.disk.running = true
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		for {
			if err := g.checkDisk(); err != nil {
				g.logger.Warn("failed to check disk pressure", "error", err)
			}
			g.mu.Lock()
			if !g.disk.again || g.stopped {
				g.disk.running = false
				g.mu.Unlock()
				return
			}
			g.disk.again = false
			g.mu.Unlock()
		}
	}()
}

// DiskUsage measures the fullest filesystem holding containerd's content
// store or snapshots, in percent; false when it cannot be measured.
func (g *GC) DiskUsage(ctx context.Context) (float64, bool) {
	roots, err := g.diskRoots(ctx)
	if err != nil {
		return 0, false
	}
	used, err := g.disk.measure(roots)
	return used, err == nil
}

// checkDisk is one disk-pressure check.
func (g *GC) checkDisk() error {
	ctx, cancel := context.WithTimeout(g.ctx, cleanupTimeout)
	defer cancel()
	roots, err := g.diskRoots(ctx)
	if err != nil {
		return err
	}
	high, low := g.cfg.Disk.High, g.cfg.Disk.Low
	began := time.Now()
	used, err := g.disk.measure(roots)
	if err != nil || used <= high {
		return err
	}
	first := used
	imgs, err := g.disk.store.inventory(ctx)
	if err != nil {
		return fmt.Errorf("failed to list images: %w", err)
	}
	g.mu.Lock()
	g.annotateLocked(imgs, g.now())
	g.mu.Unlock()
	order := evictionOrder(imgs)
	g.logger.Warn("disk pressure: removing unused images, least recently used first",
		"disk_used_percent", percent(used), "disk_high", percent(high), "disk_low", percent(low), "paths", roots, "candidates", len(order))
	measure := func() (float64, error) {
		var err error
		used, err = g.disk.measure(roots)
		return used, err
	}
	removed := 0
	final, err := reclaim(order, low, measure, func(img imageUse) (bool, error) {
		ok, err := g.removeForDisk(ctx, img, used)
		if ok {
			removed++
		}
		return ok, err
	})
	if err == nil && final > low {
		held := 0
		for _, im := range imgs {
			if im.held && !im.pinned && !im.inUse {
				held++
			}
		}
		g.logger.Warn("disk pressure remains: no unused image is left to remove", "disk_used_percent", percent(final), "disk_low", percent(low),
			"warmed_images_held", held)
	}
	if final > 0 { // measured to the end
		g.logger.Info("disk pressure check done", "removed", removed, "disk_used_percent_before", percent(first),
			"disk_used_percent", percent(final), "disk_low", percent(low), "duration", time.Since(began))
	}
	return err
}

// removeForDisk removes img under disk pressure unless it is in use,
// pinned, starting, warmed meanwhile or being removed by its delay.
func (g *GC) removeForDisk(ctx context.Context, img imageUse, used float64) (bool, error) {
	g.mu.Lock()
	warmed := g.warmed[img.name].After(img.warmed)
	if g.stopped || g.removing[img.name] != nil || g.starting[img.name] > 0 || warmed {
		g.mu.Unlock()
		return false, nil
	}
	p := &pending{}
	g.beginRemovalLocked(img.name, p)
	g.mu.Unlock()
	defer g.endRemoval(img.name, p)
	return g.collect(ctx, img.name, p, "disk pressure",
		"disk_used_percent", percent(used), "disk_high", percent(g.cfg.Disk.High), "disk_low", percent(g.cfg.Disk.Low),
		"last_used", img.lastUsed.UTC().Format(time.RFC3339), "within_image_delay", img.delayed)
}

// diskRoots finds, once, the directories whose filesystems are measured:
// what containerd says, else gc.disk_paths.
func (g *GC) diskRoots(ctx context.Context) ([]string, error) {
	g.mu.Lock()
	roots, ds := g.disk.roots, g.disk.store
	g.mu.Unlock()
	if len(roots) > 0 {
		return roots, nil
	}
	var err error
	if ds != nil {
		roots, err = ds.roots(ctx)
	}
	if len(roots) > 0 {
		g.mu.Lock()
		g.disk.roots = roots
		g.mu.Unlock()
		return roots, nil
	}
	if len(g.cfg.Disk.Paths) > 0 {
		return g.cfg.Disk.Paths, nil // asked again next time: containerd may say then
	}
	if err != nil {
		return nil, fmt.Errorf("failed to find containerd's content and snapshot roots (set gc.disk_paths): %w", err)
	}
	return nil, fmt.Errorf("containerd names no root for its content store or snapshotter %q: set gc.disk_paths", g.cfg.Snapshotter)
}

// percent rounds a usage for logs: 87.46 -> 87.5.
func percent(p float64) float64 { return float64(int(p*10+0.5)) / 10 }
