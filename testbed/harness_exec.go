package testbed

import (
	"context"
	"io"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	dproto "github.com/hashicorp/nomad/plugins/drivers/proto"
	"github.com/shoenig/test/must"
)

// ExecResult is what a streamed exec printed and how it ended.
type ExecResult struct {
	Code   int
	Stdout string
	Stderr string
}

// Exec runs `/bin/sh -c script` in the task through ExecTaskStreaming, as
// `nomad alloc exec` does: stdin is sent and closed (left open with tty,
// after two resizes that end at 100x100).
func (h *Harness) Exec(t *testing.T, taskID, script string, tty bool, stdin string) ExecResult {
	t.Helper()
	d, ok := h.impl.(drivers.ExecTaskStreamingDriver)
	must.True(t, ok, must.Sprint("driver does not stream exec"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream := &execStream{input: execInput(tty, stdin)}
	opts, errCh := drivers.StreamToExecOptions(ctx, []string{"/bin/sh", "-c", script}, tty, stream)
	res, err := d.ExecTaskStreaming(ctx, taskID, opts)
	must.NoError(t, err)
	select {
	case err := <-errCh:
		must.NoError(t, err)
	default:
	}
	stream.mu.Lock()
	defer stream.mu.Unlock()
	return ExecResult{Code: res.ExitCode, Stdout: stream.stdout, Stderr: stream.stderr}
}

func execInput(tty bool, stdin string) []*drivers.ExecTaskStreamingRequestMsg {
	var in []*drivers.ExecTaskStreamingRequestMsg
	if tty {
		for _, size := range [][2]int32{{50, 40}, {100, 100}} {
			in = append(in, &drivers.ExecTaskStreamingRequestMsg{
				TtySize: &dproto.ExecTaskStreamingRequest_TerminalSize{Height: size[0], Width: size[1]},
			})
		}
	}
	in = append(in, &drivers.ExecTaskStreamingRequestMsg{Stdin: &dproto.ExecTaskStreamingIOOperation{Data: []byte(stdin)}})
	if !tty {
		in = append(in, &drivers.ExecTaskStreamingRequestMsg{Stdin: &dproto.ExecTaskStreamingIOOperation{Close: true}})
	}
	return in
}

// execStream plays the client's side of a streamed exec.
type execStream struct {
	input []*drivers.ExecTaskStreamingRequestMsg
	next  int

	mu             sync.Mutex
	stdout, stderr string
}

func (s *execStream) Recv() (*drivers.ExecTaskStreamingRequestMsg, error) {
	if s.next >= len(s.input) {
		return nil, io.EOF
	}
	m := s.input[s.next]
	s.next++
	return m, nil
}

func (s *execStream) Send(m *drivers.ExecTaskStreamingResponseMsg) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Stdout != nil {
		s.stdout += string(m.Stdout.Data)
	}
	if m.Stderr != nil {
		s.stderr += string(m.Stderr.Data)
	}
	return nil
}

// execCases are the behaviours `nomad alloc exec` relies on, with and
// without a terminal.
var execCases = []struct {
	name, script, stdin string
	tty                 bool
	code                int
	stdout, stderr      *regexp.Regexp
}{
	{name: "exit code and both streams", script: "echo out; echo err >&2; exit 43", code: 43,
		stdout: regexp.MustCompile(`^out\n$`), stderr: regexp.MustCompile(`^err\n$`)},
	{name: "output streams as it comes", script: "for n in 1 2 3; do echo $n; sleep 0.2; done",
		stdout: regexp.MustCompile(`^1\n2\n3\n$`), stderr: regexp.MustCompile(`^$`)},
	{name: "no terminal without tty", script: "stty size", code: 1,
		stdout: regexp.MustCompile(`^$`), stderr: regexp.MustCompile(`Inappropriate ioctl|not a tty`)},
	{name: "stdin reaches the command", script: "echo first; head -n1", stdin: "from stdin\n",
		stdout: regexp.MustCompile(`^first\nfrom stdin\n$`), stderr: regexp.MustCompile(`^$`)},
	{name: "tty merges streams", script: "echo out; echo err >&2; exit 43", tty: true, code: 43,
		stdout: regexp.MustCompile(`^out\r\nerr\r\n$`), stderr: regexp.MustCompile(`^$`)},
	{name: "tty takes the last resize", script: "sleep 0.5; stty size", tty: true,
		stdout: regexp.MustCompile(`^100 100\r\n$`), stderr: regexp.MustCompile(`^$`)},
	{name: "tty echoes stdin", script: "head -n1", stdin: "from stdin\n", tty: true,
		stdout: regexp.MustCompile(`^from stdin\r\nfrom stdin\r\n$`), stderr: regexp.MustCompile(`^$`)},
	{name: "tty waits for the lead process only", script: "( (sleep 3; echo late) & ); echo main; exec sleep 0.5", tty: true,
		stdout: regexp.MustCompile(`^main\r\n$`), stderr: regexp.MustCompile(`^$`)},
}

// ExecConformance runs the exec behaviours against a running task.
func (h *Harness) ExecConformance(t *testing.T, taskID string) {
	for _, c := range execCases {
		t.Run(c.name, func(t *testing.T) {
			r := h.Exec(t, taskID, c.script, c.tty, c.stdin)
			must.Eq(t, c.code, r.Code)
			must.RegexMatch(t, c.stdout, r.Stdout)
			must.RegexMatch(t, c.stderr, r.Stderr)
		})
	}
}
