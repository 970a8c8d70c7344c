package image

import "time"

// SetMinTransferStall makes pulls with an activity timeout of at least d go
// through containerd's transfer service, until the returned func restores
// the default. Tests use it to exercise that path with short timeouts.
func SetMinTransferStall(d time.Duration) (restore func()) {
	old := minTransferStall
	minTransferStall = d
	return func() { minTransferStall = old }
}
