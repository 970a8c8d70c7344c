package driver

import (
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

func TestPhaseTimer(t *testing.T) {
	pt := newPhaseTimer()
	time.Sleep(20 * time.Millisecond)
	pt.mark("image")
	pt.add("cni_add", 1500*time.Microsecond)
	pt.mark("start")
	kv := pt.keyvals()
	must.Len(t, 8, kv)
	names := []any{kv[0], kv[2], kv[4], kv[6]}
	must.Eq(t, []any{"image_ms", "cni_add_ms", "start_ms", "total_ms"}, names)
	image, add, start, total := kv[1].(float64), kv[3].(float64), kv[5].(float64), kv[7].(float64)
	must.GreaterEq(t, 20.0, image)
	must.Eq(t, 1.5, add)
	must.Less(t, image, start)
	must.GreaterEq(t, image+start-0.02, total) // each rounded to the hundredth
	// a second call reports the same phases with a later total
	again := pt.keyvals()
	must.Len(t, 8, again)
	must.GreaterEq(t, total, again[7].(float64))
}

func TestMillis(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want float64
	}{
		{0, 0},
		{time.Millisecond, 1},
		{1234567 * time.Nanosecond, 1.23},
		{1235 * time.Microsecond, 1.24},
		{2 * time.Second, 2000},
	}
	for _, c := range cases {
		must.Eq(t, c.want, millis(c.d), must.Sprintf("%s", c.d))
	}
}
