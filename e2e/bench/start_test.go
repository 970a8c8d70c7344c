//go:build bench

package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/shoenig/test/must"

	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

// callTimeout bounds one start or removal.
const callTimeout = 2 * time.Minute

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// interleave runs the driver's and the baseline's measurement n times each,
// alternating which goes first, so that load from elsewhere falls on both
// alike. warm runs of each come first and are not kept.
func interleave(n, warm int, drv, base func() float64) (d, b []float64) {
	s := rotate(n, warm, drv, base)
	return s[0], s[1]
}

// rotate runs each of fns n times, round by round, each round taking the
// next of every order of fns (Orders), after warm rounds that are not kept.
func rotate(n, warm int, fns ...func() float64) [][]float64 {
	for range warm {
		for _, f := range fns {
			f()
		}
	}
	orders := Orders(len(fns))
	out := make([][]float64, len(fns))
	for i := range n {
		for _, k := range orders[i%len(orders)] {
			out[k] = append(out[k], fns[k]())
		}
	}
	return out
}

// startFigure measures StartTask against the baseline's direct start of the
// same container, one task at a time.
type startFigure struct {
	b      *bed
	d      *direct
	name   string
	config func() map[string]any
	ports  []structs.AllocatedPortMapping
	net    bool
}

func (f *startFigure) newTask() *task { return f.b.newTask("", "web", f.config(), f.ports...) }

// template starts one task through the driver and keeps what it made.
func (f *startFigure) template() *template {
	tk := f.newTask()
	_, handle, err := f.b.startDriver(tk)
	must.NoError(f.b.t, err)
	tm := f.b.captureTemplate(tk, handle)
	f.b.destroyDriver(tk)
	return tm
}

func (f *startFigure) driverRun() float64 {
	tk := f.newTask()
	took, _, err := f.b.startDriver(tk)
	must.NoError(f.b.t, err)
	f.b.destroyDriver(tk)
	return ms(took)
}

func (f *startFigure) baselineRun(tm *template) float64 {
	ctx, cancel := context.WithTimeout(f.b.cd.Context(), callTimeout)
	defer cancel()
	tk := f.newTask()
	dt, took, err := f.d.start(ctx, tm, tk, startOpts{image: busyboxRef, network: f.net, grouped: true})
	must.NoError(f.b.t, err)
	must.NoError(f.b.t, f.d.remove(ctx, dt))
	tk.cleanup()
	return ms(took)
}

func (f *startFigure) run(runs int, target float64, baseName string) Row {
	tm := f.template()
	ds, bs := interleave(runs, 2, f.driverRun, func() float64 { return f.baselineRun(tm) })
	base := Summarize(bs)
	return Row{Name: f.name, Unit: "ms", Driver: Summarize(ds), Baseline: &base, BaselineName: baseName,
		Target: Target{TargetRatio, target}}
}

// figureStart: StartTask to running, cached image, host network.
func (b *bed) figureStart(d *direct, runs int) Row {
	return b.hostStarts(d).run(runs, 1.15, "containerd client")
}

// hostStarts are starts of a sleeper on the host network.
func (b *bed) hostStarts(d *direct) *startFigure {
	return &startFigure{b: b, d: d, name: "start, host network", config: func() map[string]any {
		c := sleeper(busyboxRef)
		c["network_mode"] = "host"
		return c
	}}
}

// figureBridgeStart: the same on the driver's bridge network with two
// port maps, against a go-cni ADD plus the same containerd calls.
func (b *bed) figureBridgeStart(d *direct, runs int) Row {
	return b.bridgeStarts(d).run(runs, 1.15, "go-cni + containerd client")
}

// bridgeStarts are starts of a sleeper on the driver's bridge network with
// two port maps.
func (b *bed) bridgeStarts(d *direct) *startFigure {
	http, err := testbed.FreePort()
	must.NoError(b.t, err)
	admin, err := testbed.FreePort()
	must.NoError(b.t, err)
	return &startFigure{b: b, d: d, name: "start, bridge + 2 port maps", net: true,
		config: func() map[string]any {
			c := sleeper(busyboxRef)
			c["network_mode"] = "bridge"
			c["ports"] = []string{"http", "admin"}
			return c
		},
		ports: []structs.AllocatedPortMapping{{Label: "http", Value: http, To: 8080}, {Label: "admin", Value: admin, To: 9090}},
	}
}

// figureConcurrent: n tasks (one per allocation) started at once, wall
// time and starts per second.
func (b *bed) figureConcurrent(d *direct, n, rounds int) (wall, rate Row) {
	f := &startFigure{b: b, d: d, config: func() map[string]any { return sleeper(busyboxRef) }}
	tm := f.template()
	batch := func() []*task {
		tasks := make([]*task, n)
		for i := range tasks {
			tasks[i] = f.newTask()
		}
		return tasks
	}
	drv := func() float64 {
		tasks := batch()
		took := together(n, func(i int) error {
			_, _, err := b.startDriver(tasks[i])
			return err
		}, func(err error) { must.NoError(b.t, err) })
		for _, tk := range tasks {
			b.destroyDriver(tk)
		}
		return ms(took)
	}
	base := func() float64 {
		ctx, cancel := context.WithTimeout(b.cd.Context(), callTimeout)
		defer cancel()
		tasks := batch()
		started := make([]*directTask, n)
		took := together(n, func(i int) error {
			var err error
			started[i], _, err = d.start(ctx, tm, tasks[i], startOpts{image: busyboxRef, grouped: true})
			return err
		}, func(err error) { must.NoError(b.t, err) })
		for i, dt := range started {
			must.NoError(b.t, d.remove(ctx, dt))
			tasks[i].cleanup()
		}
		return ms(took)
	}
	ds, bs := interleave(rounds, 1, drv, base)
	perSec := func(xs []float64) []float64 {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = float64(n) / (x / 1000)
		}
		return out
	}
	bw, br := Summarize(bs), Summarize(perSec(bs))
	name := fmt.Sprintf("%d concurrent starts", n)
	wall = Row{Name: name + ", wall", Unit: "ms", Driver: Summarize(ds), Baseline: &bw, BaselineName: "containerd client",
		Target: Target{TargetRatio, 1.25}}
	rate = Row{Name: name + ", rate", Unit: "starts/s", Driver: Summarize(perSec(ds)), Baseline: &br, BaselineName: "containerd client"}
	return wall, rate
}

// together runs start(0) to start(n-1) at the same moment and returns the
// time until the last one returned; check gets each error after all ended.
func together(n int, start func(i int) error, check func(error)) time.Duration {
	gate := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			errs[i] = start(i)
		}()
	}
	began := time.Now()
	close(gate)
	wg.Wait()
	took := time.Since(began)
	for _, err := range errs {
		check(err)
	}
	return took
}
