package executor

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestExitFromCode(t *testing.T) {
	at := time.Unix(1700000000, 0)
	cases := []struct {
		code   uint32
		signal int
	}{
		{code: 0},
		{code: 1},
		{code: 128},
		{code: 129, signal: 1},
		{code: 137, signal: 9},
		{code: 143, signal: 15},
		{code: 192, signal: 64},
		{code: 193},
		{code: 255},
	}
	for _, tc := range cases {
		es := exitFromCode(tc.code, at, false)
		if es.Code != int(tc.code) || es.Signal != tc.signal || !es.ExitedAt.Equal(at) || es.OOMKilled || es.Err != nil {
			t.Errorf("exitFromCode(%d) = %+v, want signal %d", tc.code, es, tc.signal)
		}
	}
	if !exitFromCode(137, at, true).OOMKilled {
		t.Error("oom flag dropped")
	}
}

func TestRecordExitOnce(t *testing.T) {
	r := New(nil, "nomad", nil)
	task := newTask(r, "web-1", nil, nil)

	select {
	case <-task.Done():
		t.Fatal("done before any exit")
	default:
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task.recordExit(ExitStatus{Code: i + 1})
		}()
	}
	wg.Wait()
	<-task.Done()
	first := task.Exit()
	task.recordExit(ExitStatus{Code: 99, Err: errors.New("late")})
	if got := task.Exit(); got.Code != first.Code || got.Err != nil || got.Code == 0 {
		t.Fatalf("exit changed from %+v to %+v", first, got)
	}
}

func TestOOMMark(t *testing.T) {
	r := New(nil, "nomad", nil)
	task := newTask(r, "web-1", nil, nil)
	if task.oomSeen() {
		t.Fatal("oom before any event")
	}
	task.markOOM()
	task.markOOM()
	if !task.oomSeen() {
		t.Fatal("oom event not kept")
	}
}
