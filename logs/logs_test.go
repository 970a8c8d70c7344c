package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
)

// layout is an allocation directory with alloc/logs and a task directory.
func layout(t *testing.T) Target {
	t.Helper()
	root := t.TempDir()
	tg := Target{AllocDir: root, LogDir: filepath.Join(root, "alloc", "logs"), SpoolDir: filepath.Join(root, "web"), Task: "web"}
	must.NoError(t, os.MkdirAll(tg.LogDir, 0o755))
	must.NoError(t, os.MkdirAll(tg.SpoolDir, 0o755))
	return tg
}

// newCollector is a collector closed when the test ends.
func newCollector(t *testing.T) *Collector {
	t.Helper()
	c, err := NewCollector(hclog.NewNullLogger())
	must.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// appendTo appends what the shim would to the spool path.
func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	must.NoError(t, err)
	_, err = f.WriteString(s)
	must.NoError(t, err)
	must.NoError(t, f.Close())
}

// collected is the stream's log files in index order, concatenated, and
// their sizes.
func collected(t *testing.T, tg Target, stream string) (string, []int) {
	t.Helper()
	entries, err := os.ReadDir(tg.LogDir)
	must.NoError(t, err)
	var idx []int
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), tg.Task+"."+stream+".")); err == nil && strings.HasPrefix(e.Name(), tg.Task+"."+stream+".") {
			idx = append(idx, n)
		}
	}
	sort.Ints(idx)
	var b strings.Builder
	var sizes []int
	for _, i := range idx {
		data, err := os.ReadFile(filepath.Join(tg.LogDir, fmt.Sprintf("%s.%s.%d", tg.Task, stream, i)))
		must.NoError(t, err)
		b.Write(data)
		sizes = append(sizes, len(data))
	}
	return b.String(), sizes
}

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line-%06d\n", i) // 12 bytes
	}
	return b.String()
}

func TestRotation(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lim       Limits
		in        string
		wantFiles []int // sizes of the files kept
		wantKept  string
	}{
		{"one file", Limits{MaxFiles: 3, MaxFileSize: 1000}, lines(0, 10), []int{120}, lines(0, 10)},
		{"lines kept whole", Limits{MaxFiles: 10, MaxFileSize: 30}, lines(0, 5), []int{24, 24, 12}, lines(0, 5)},
		{"old files removed", Limits{MaxFiles: 2, MaxFileSize: 24}, lines(0, 7), []int{24, 12}, lines(4, 7)},
		{"line longer than a file", Limits{MaxFiles: 10, MaxFileSize: 5}, "abcdefgh\n", []int{5, 4}, "abcdefgh\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := layout(t)
			c := newCollector(t)
			tk, err := c.Start(tg, tc.lim, true)
			must.NoError(t, err)
			appendTo(t, tk.Stdout, tc.in)
			tk.Stop(false)
			got, sizes := collected(t, tg, "stdout")
			must.Eq(t, tc.wantKept, got)
			must.Eq(t, tc.wantFiles, sizes)
		})
	}
}

// TestWakesOnWrite checks that a write is copied without a stop.
func TestWakesOnWrite(t *testing.T) {
	tg := layout(t)
	c := newCollector(t)
	tk, err := c.Start(tg, Limits{MaxFiles: 2, MaxFileSize: 1 << 20}, true)
	must.NoError(t, err)
	appendTo(t, tk.Stderr, "hello\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := collected(t, tg, "stderr")
		if got == "hello\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stderr not collected: %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tk.Stop(true)
	_, err = os.Stat(filepath.Join(tg.SpoolDir, "web.stderr.spool"))
	must.True(t, os.IsNotExist(err), must.Sprint("the spool of a removed task is left"))
}

// TestSpoolFreed checks that what was copied leaves the spool's disk.
func TestSpoolFreed(t *testing.T) {
	tg := layout(t)
	c := newCollector(t)
	tk, err := c.Start(tg, Limits{MaxFiles: 2, MaxFileSize: 1 << 20}, true)
	must.NoError(t, err)
	appendTo(t, tk.Stdout, lines(0, 100000)) // 1.2 MB
	tk.Stop(false)
	var st syscall.Stat_t
	must.NoError(t, syscall.Stat(filepath.Join(tg.SpoolDir, "web.stdout.spool"), &st))
	must.Eq(t, int64(1200000), st.Size)
	must.Less(t, 64, st.Blocks*512/1024, must.Sprintf("the spool still holds %d KiB on disk", st.Blocks*512/1024))
}

// TestResume stops collectors at many points, as a killed plugin would, and
// checks that each line lands exactly once, also when the files a stopped
// collector wrote last are removed by later rotations.
func TestResume(t *testing.T) {
	// a round's lines fit what 3 files keep, so that no backlog is skipped
	// (TestBacklogSkipped)
	const per = 24
	for _, maxFiles := range []int{1000, 3} {
		t.Run(fmt.Sprintf("max_files %d", maxFiles), func(t *testing.T) {
			tg := layout(t)
			lim := Limits{MaxFiles: maxFiles, MaxFileSize: 100}
			spool := filepath.Join(tg.SpoolDir, "web.stdout.spool")
			for round := 0; round < 20; round++ {
				c, err := NewCollector(hclog.NewNullLogger())
				must.NoError(t, err)
				tk, err := c.Start(tg, lim, round == 0)
				must.NoError(t, err)
				appendTo(t, spool, lines(round*per, (round+1)*per))
				if round%2 == 0 {
					tk.Stop(false) // copied
				}
				c.Close() // odd rounds: whatever was not copied waits in the spool
			}
			c := newCollector(t)
			tk, err := c.Start(tg, lim, false)
			must.NoError(t, err)
			tk.Stop(false)
			checkSuffix(t, tg, lines(0, 20*per), maxFiles)

			// a resume with nothing new to copy leaves the files as they are
			before := listing(t, tg.LogDir)
			tk, err = c.Start(tg, lim, false)
			must.NoError(t, err)
			tk.Stop(false)
			must.Eq(t, before, listing(t, tg.LogDir))

			// a task restart continues the last file with a fresh spool
			tk, err = c.Start(tg, lim, true)
			must.NoError(t, err)
			appendTo(t, tk.Stdout, lines(20*per, 20*per+10))
			tk.Stop(false)
			checkSuffix(t, tg, lines(0, 20*per+10), maxFiles)
		})
	}
}

// TestBacklogSkipped: output that piled up while no collector ran, beyond
// what max_files files keep, is not copied through rotations only to be
// removed: the next collector resumes at the first whole line of the part
// the files can hold, and the kept files still end with the task's last
// line, nothing doubled.
func TestBacklogSkipped(t *testing.T) {
	tg := layout(t)
	lim := Limits{MaxFiles: 3, MaxFileSize: 100}
	c, err := NewCollector(hclog.NewNullLogger())
	must.NoError(t, err)
	tk, err := c.Start(tg, lim, true)
	must.NoError(t, err)
	appendTo(t, tk.Stdout, lines(0, 5))
	tk.Stop(false)
	c.Close()

	spool := filepath.Join(tg.SpoolDir, "web.stdout.spool")
	appendTo(t, spool, lines(5, 2000)) // 24 kB while no collector runs
	tk, err = newCollector(t).Start(tg, lim, false)
	must.NoError(t, err)
	tk.Stop(false)

	got, sizes := collected(t, tg, "stdout")
	must.LessEq(t, 3, len(sizes))
	must.StrHasSuffix(t, got, lines(0, 2000), must.Sprint("lines lost or doubled"))
	must.Greater(t, 100*(3-1)-12*3, len(got), must.Sprint("the kept files are nearly full"))
	dir, err := os.Open(tg.LogDir)
	must.NoError(t, err)
	defer dir.Close()
	last, err := lastIndex(dir, "web.stdout")
	must.NoError(t, err)
	must.Less(t, 10, last, must.Sprintf("the backlog went through %d rotations instead of being skipped", last))
}

// listing is the names and sizes of the files in dir.
func listing(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must.NoError(t, err)
	out := map[string]int64{}
	for _, e := range entries {
		info, err := e.Info()
		must.NoError(t, err)
		out[e.Name()] = info.Size()
	}
	return out
}

// checkSuffix checks that the kept files hold the end of want, whole lines,
// nothing lost or doubled, in at most maxFiles files.
func checkSuffix(t *testing.T, tg Target, want string, maxFiles int) {
	t.Helper()
	got, sizes := collected(t, tg, "stdout")
	must.LessEq(t, maxFiles, len(sizes))
	// 8 lines of 12 bytes fit a file of 100: the file index tells how much
	// was written in all, the removed files included
	dir, err := os.Open(tg.LogDir)
	must.NoError(t, err)
	defer dir.Close()
	last, err := lastIndex(dir, "web.stdout")
	must.NoError(t, err)
	must.Eq(t, (len(want)/12+7)/8-1, last, must.Sprint("more or fewer files than the lines fill: lines doubled or lost"))
	if len(sizes) < maxFiles {
		must.Eq(t, want, got)
		return
	}
	must.StrHasSuffix(t, got, want, must.Sprint("lines lost or doubled"))
	must.Greater(t, 100*(maxFiles-1)-12*maxFiles, len(got), must.Sprint("the kept files are nearly full"))
	must.True(t, strings.HasPrefix(got, "line-"), must.Sprintf("the first kept file does not begin with a line: %q", got[:20]))
}

// TestPlantedNamesNotFollowed plants a symlink, a hard link and a fifo
// under log file names: none of their targets is written.
func TestPlantedNamesNotFollowed(t *testing.T) {
	tg := layout(t)
	outside := filepath.Join(t.TempDir(), "host-file")
	must.NoError(t, os.WriteFile(outside, []byte("host\n"), 0o644))
	must.NoError(t, os.Symlink(outside, filepath.Join(tg.LogDir, "web.stdout.0")))
	must.NoError(t, os.Link(outside, filepath.Join(tg.LogDir, "web.stderr.0")))
	c := newCollector(t)
	tk, err := c.Start(tg, Limits{MaxFiles: 5, MaxFileSize: 12}, true)
	must.NoError(t, err)
	appendTo(t, tk.Stdout, lines(0, 3))
	appendTo(t, tk.Stderr, lines(3, 6))
	tk.Stop(false)
	b, err := os.ReadFile(outside)
	must.NoError(t, err)
	must.Eq(t, "host\n", string(b))
	for i, stream := range []string{"stdout", "stderr"} {
		st, err := os.Lstat(filepath.Join(tg.LogDir, "web."+stream+".0"))
		must.NoError(t, err)
		must.True(t, st.Mode().IsRegular(), must.Sprintf("%s.0 is %s", stream, st.Mode()))
		got, _ := collected(t, tg, stream)
		must.Eq(t, lines(3*i, 3*i+3), got)
	}
}

func TestRefusedDirectories(t *testing.T) {
	tg := layout(t)
	other := t.TempDir()
	link := filepath.Join(tg.AllocDir, "linked")
	must.NoError(t, os.Symlink(other, link))
	c := newCollector(t)
	lim := Limits{MaxFiles: 1, MaxFileSize: 1}
	for _, tc := range []struct {
		name string
		mod  func(*Target)
		want string
	}{
		{"symlinked log dir", func(tg *Target) { tg.LogDir = link }, "is a symlink"},
		{"outside the allocation", func(tg *Target) { tg.SpoolDir = other }, "not beneath the allocation directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := tg
			tc.mod(&bad)
			_, err := c.Start(bad, lim, true)
			must.ErrorContains(t, err, tc.want)
		})
	}
	_, err := c.Start(tg, Limits{MaxFiles: 0, MaxFileSize: 1}, true)
	must.ErrorContains(t, err, "max_files 0")
}
