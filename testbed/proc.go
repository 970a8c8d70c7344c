package testbed

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// daemon is a process we started, reaped by a goroutine.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// LaunchOptions say where a Launch* function puts a daemon's files and
// whether the daemon outlives the calling process.
type LaunchOptions struct {
	// Dir holds the daemon's config, log and data. Empty means a new temp
	// dir, removed by Stop.
	Dir string
	// Detach starts the daemon in a session of its own, so that it keeps
	// running when the caller exits, and writes its PID to Dir/<name>.pid.
	Detach bool
}

// dir is o.Dir, or a new temp dir (owned: for Stop to remove).
func (o LaunchOptions) dir(prefix string) (dir string, owned bool, err error) {
	if o.Dir != "" {
		dir, err = filepath.Abs(o.Dir)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		return dir, false, err
	}
	dir, err = os.MkdirTemp("", prefix)
	return dir, true, err
}

// start starts argv with its output in Dir/name.log, in its own process
// group (or session, detached, with Dir/name.pid written).
func (o LaunchOptions) start(dir, name string, env []string, argv ...string) (*daemon, error) {
	d, err := startDaemon(filepath.Join(dir, name+".log"), env, o.Detach, argv...)
	if err == nil && o.Detach {
		err = os.WriteFile(filepath.Join(dir, name+".pid"), []byte(strconv.Itoa(d.pid())+"\n"), 0o644)
	}
	return d, err
}

// startDaemon starts argv with its output in logPath, in its own process
// group, or detached in its own session.
func startDaemon(logPath string, env []string, detach bool, argv ...string) (*daemon, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !detach, Setsid: detach}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to grace, then SIGKILLs and waits for the exit.
func (d *daemon) stop(sig syscall.Signal, grace time.Duration) {
	if d.exited() {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
		return
	case <-time.After(grace):
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// logTail is the last n bytes of the daemon's log, for failure reports.
func (d *daemon) logTail(n int64) string { return fileTail(d.log, n) }

func fileTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, 0)
	}
	b := new(bytes.Buffer)
	_, _ = b.ReadFrom(f)
	return b.String()
}

// procs lists the PIDs whose command line satisfies match.
func procs(match func(pid int, args []string) bool) []int {
	return scanProcs("cmdline", func(pid int, fields []string) bool {
		return len(fields) > 0 && fields[0] != "" && match(pid, fields)
	})
}

// procsWithEnv lists the PIDs whose environment holds the exact entry kv.
func procsWithEnv(kv string) []int {
	return scanProcs("environ", func(_ int, fields []string) bool { return slices.Contains(fields, kv) })
}

// scanProcs lists the PIDs, other than this process, whose NUL-separated
// /proc/<pid>/<file> satisfies match.
func scanProcs(file string, match func(pid int, fields []string) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), file))
		if err != nil {
			continue
		}
		if match(pid, strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")) {
			out = append(out, pid)
		}
	}
	return out
}

// descendants lists the children, grandchildren, ... of the given PIDs.
func descendants(pids []int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		s := string(raw)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	var out []int
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if in[pp] && !in[pid] {
				in[pid] = true
				out = append(out, pid)
				changed = true
			}
		}
	}
	return out
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return !errors.Is(err, syscall.ESRCH)
	}
	// a zombie has exited; only its parent's wait is missing
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(raw)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] != 'Z'
	}
	return true
}

// killPIDs SIGKILLs the given processes and waits (up to 5s) until they are gone.
func killPIDs(pids []int) {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	Poll(5*time.Second, 20*time.Millisecond, func() bool {
		for _, p := range pids {
			if alive(p) {
				return false
			}
		}
		return true
	})
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UnmountAll unmounts everything mounted at or below dir (lazily where a
// plain unmount fails).
func UnmountAll(dir string) error {
	var last error
	for round := 0; round < 5; round++ {
		mps := mountsUnder(dir)
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			if err := unix.Unmount(mp, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
					last = fmt.Errorf("unmount %s: %w", mp, err)
				}
			}
		}
	}
	if mps := mountsUnder(dir); len(mps) > 0 {
		return fmt.Errorf("still mounted under %s: %v (%v)", dir, mps, last)
	}
	return nil
}

// removeTree unmounts everything below dir, then removes it.
func removeTree(dir string) error {
	if dir == "" {
		return nil
	}
	err := UnmountAll(dir)
	if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cleanEnv is the environment for the daemons we start: ours minus the
// variables that would make them reach beyond loopback.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "AWS_CA_BUNDLE", "PATH", "NOTIFY_SOCKET", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+childPath())
	return append(env, extra...)
}

// stoppable is a daemon of the test bed.
type stoppable interface {
	LogTail(n int64) string
	Stop() error
}

// stopAtCleanup stops d when the test ends, showing its log tail when the
// test failed.
func stopAtCleanup(t testing.TB, name string, d stoppable) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, d.LogTail(8192))
		}
		if err := d.Stop(); err != nil {
			t.Errorf("testbed: %s cleanup: %v", name, err)
		}
	})
}
