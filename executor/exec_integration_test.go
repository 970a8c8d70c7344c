//go:build integration

package executor_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-containerd/nomad-driver-containerd/executor"
	"github.com/nomad-containerd/nomad-driver-containerd/testbed"
)

func TestExec(t *testing.T) {
	b := newBed(t)
	spec := sh(termExits("0"))
	spec.Env = map[string]string{"FROM_TASK": "yes"}
	spec.Cwd = "/tmp"
	task := b.run(t, "exec-target", spec, "", "")

	t.Run("non-interactive", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code, err := task.Exec(b.ctx, executor.ExecOptions{
			Args:   []string{"sh", "-c", `echo "$FROM_TASK in $(pwd)"; test -t 1 || echo "no tty"; echo oops >&2; exit 7`},
			Stdout: &stdout, Stderr: &stderr,
		})
		if err != nil || code != 7 {
			t.Fatalf("exec = %d, %v", code, err)
		}
		if stdout.String() != "yes in /tmp\nno tty\n" || stderr.String() != "oops\n" {
			t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
		}
	})

	t.Run("stdin", func(t *testing.T) {
		var stdout bytes.Buffer
		code, err := task.Exec(b.ctx, executor.ExecOptions{
			Args:  []string{"tr", "a-z", "A-Z"},
			Stdin: strings.NewReader("shout\n"), Stdout: &stdout, Stderr: io.Discard,
		})
		if err != nil || code != 0 || stdout.String() != "SHOUT\n" {
			t.Fatalf("exec = %d, %v, %q", code, err, stdout.String())
		}
	})

	t.Run("tty", func(t *testing.T) {
		stdinR, stdinW := io.Pipe()
		defer stdinW.Close()
		resize := make(chan executor.TermSize)
		var stdout testbed.SyncBuffer
		done := make(chan struct{})
		var code int
		var err error
		go func() {
			defer close(done)
			code, err = task.Exec(b.ctx, executor.ExecOptions{
				Args: []string{"sh", "-c", `tty; read line; stty size; echo "got $line"; exit 5`},
				Tty:  true, Stdin: stdinR, Stdout: &stdout, Resize: resize,
			})
		}()
		// The second size is taken only once the first was applied.
		for range 2 {
			select {
			case resize <- executor.TermSize{Width: 100, Height: 30}:
			case <-done:
				t.Fatalf("tty exec ended early: %d, %v (output %q)", code, err, stdout.String())
			case <-time.After(time.Minute):
				t.Fatal("tty exec took no terminal size")
			}
		}
		if _, err := io.WriteString(stdinW, "go\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("tty exec did not end")
		}
		out := stdout.String()
		if err != nil || code != 5 {
			t.Fatalf("exec = %d, %v (output %q)", code, err, out)
		}
		for _, want := range []string{"/dev/pts/", "30 100\r\n", "got go\r\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("tty output %q lacks %q", out, want)
			}
		}
	})

	t.Run("context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		defer cancel()
		_, err := task.Exec(ctx, executor.ExecOptions{Args: []string{"sleep", "600"}})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("exec = %v, want the deadline", err)
		}
	})

	if err := task.Stop(b.ctx, syscall.SIGTERM, time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestStats(t *testing.T) {
	b := newBed(t)
	spec := sh(`while :; do :; done`)
	spec.MemoryBytes = 64 << 20
	task := b.run(t, "stats", spec, "", "")
	// An exec round trip gives the busy loop some time on the CPU.
	if code, err := task.Exec(b.ctx, executor.ExecOptions{Args: []string{"true"}}); err != nil || code != 0 {
		t.Fatalf("exec = %d, %v", code, err)
	}
	s, err := task.Stats(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUTotalNanos == 0 || s.CPUUserNanos+s.CPUSystemNanos == 0 || s.MemoryUsage == 0 || s.MemoryRSS == 0 {
		t.Fatalf("stats = %+v", s)
	}
	if !slices.Contains(s.MemoryMeasured, "Usage") || !slices.Contains(s.MemoryMeasured, "RSS") {
		t.Errorf("measured = %v", s.MemoryMeasured)
	}
	if slices.Contains(s.MemoryMeasured, "Max Usage") && s.MemoryMaxUsage < s.MemoryUsage {
		t.Errorf("max usage %d below usage %d", s.MemoryMaxUsage, s.MemoryUsage)
	}
	if time.Since(s.Timestamp) > time.Minute || s.Timestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("timestamp %s", s.Timestamp)
	}
	if err := task.Stop(b.ctx, syscall.SIGKILL, time.Second); err != nil {
		t.Fatal(err)
	}
}
