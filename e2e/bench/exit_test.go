//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shoenig/test/must"
)

// exitStamp is where the task records, just before it exits, the time
// read inside the container (busybox adjtimex prints it to the microsecond).
const exitStamp = "alloc/exit-stamp"

func exiter() map[string]any {
	return map[string]any{"image": busyboxRef, "command": "sh", "network_mode": "host",
		"args": []string{"-c", "sleep 0.3; exec adjtimex > /" + exitStamp}}
}

// figureExit: from the task's exit (its own clock) to WaitTask's result in
// the caller, against containerd's own Wait.
func (b *bed) figureExit(d *direct, runs int) Row {
	f := &startFigure{b: b, d: d, config: exiter}
	tm := f.template()
	drv := func() float64 {
		tk := f.newTask()
		_, _, err := b.startDriver(tk)
		must.NoError(b.t, err)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		ch, err := b.h.WaitTask(ctx, tk.cfg.ID)
		must.NoError(b.t, err)
		res := <-ch
		got := time.Now()
		must.NotNil(b.t, res)
		must.Eq(b.t, 0, res.ExitCode)
		lat := got.Sub(readStamp(b, tk))
		b.destroyDriver(tk)
		return ms(lat)
	}
	base := func() float64 {
		ctx, cancel := context.WithTimeout(b.cd.Context(), callTimeout)
		defer cancel()
		tk := f.newTask()
		dt, _, err := d.start(ctx, tm, tk, startOpts{image: busyboxRef, grouped: true})
		must.NoError(b.t, err)
		ch, err := dt.task.Wait(ctx)
		must.NoError(b.t, err)
		st := <-ch
		got := time.Now()
		must.NoError(b.t, st.Error())
		must.Eq(b.t, 0, st.ExitCode())
		lat := got.Sub(readStamp(b, tk))
		must.NoError(b.t, d.remove(ctx, dt))
		tk.cleanup()
		return ms(lat)
	}
	ds, bs := interleave(runs, 1, drv, base)
	bl := Summarize(bs)
	return Row{Name: "exit to WaitTask result", Unit: "ms", Driver: Summarize(ds), Baseline: &bl,
		BaselineName: "containerd Wait", Target: Target{TargetP95, 20}}
}

// readStamp reads the time the task recorded before it exited.
func readStamp(b *bed, tk *task) time.Time {
	b.t.Helper()
	data, err := os.ReadFile(filepath.Join(tk.cfg.AllocDir, exitStamp))
	must.NoError(b.t, err)
	at, err := parseAdjtimex(data)
	must.NoError(b.t, err)
	return at
}

// parseAdjtimex reads "time.tv_sec:" and "time.tv_usec:" from busybox
// adjtimex's output.
func parseAdjtimex(out []byte) (time.Time, error) {
	var sec, usec int64 = -1, -1
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		switch key {
		case "time.tv_sec":
			if err != nil {
				return time.Time{}, err
			}
			sec = n
		case "time.tv_usec":
			if err != nil {
				return time.Time{}, err
			}
			usec = n
		}
	}
	if sec < 0 || usec < 0 {
		return time.Time{}, fmt.Errorf("no time in adjtimex output %q", out)
	}
	return time.Unix(sec, usec*1000), nil
}
