package driver

import (
	"context"
	"time"
)

// periodic sends what produce returns on a new channel at once and then
// every period, until ctx, the driver or stop ends (a nil stop never does);
// produce returning false skips that round. Fingerprints and stats are
// periodic by Nomad's contract: it asks for a rate.
func periodic[T any](ctx, driverCtx context.Context, stop <-chan struct{}, period time.Duration, produce func() (T, bool)) <-chan T {
	ch := make(chan T)
	go func() {
		defer close(ch)
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-driverCtx.Done():
				return
			case <-stop:
				return
			case <-timer.C:
				timer.Reset(period)
			}
			v, ok := produce()
			if !ok {
				continue
			}
			select {
			case ch <- v:
			case <-ctx.Done():
				return
			case <-driverCtx.Done():
				return
			}
		}
	}()
	return ch
}
