package driver

import (
	"context"
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

// A create waits while every slot is held, goes on once one is released,
// and gives up when its context ends.
func TestCreateSlots(t *testing.T) {
	s := newCreateSlots(2)
	ctx := context.Background()
	r1, err := s.acquire(ctx)
	must.NoError(t, err)
	r2, err := s.acquire(ctx)
	must.NoError(t, err)

	got := make(chan func(), 1)
	go func() {
		r, err := s.acquire(ctx)
		must.NoError(t, err)
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("a third create got a slot while both were held")
	case <-time.After(50 * time.Millisecond):
	}
	r1()
	var r3 func()
	select {
	case r3 = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("a released slot was not handed to the waiting create")
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.acquire(cctx)
	must.ErrorIs(t, err, context.Canceled)
	must.ErrorContains(t, err, "failed to wait for a turn to create the container")
	r2()
	r3()
	must.Eq(t, 0, len(s))
}
