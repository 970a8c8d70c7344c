package logs

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Collector copies the spools of many tasks into their log files, woken
// by one inotify instance.
type Collector struct {
	logger  hclog.Logger
	inotify *os.File

	mu       sync.Mutex
	watches  map[int32]chan struct{}
	closed   bool
	wg       sync.WaitGroup
	bufs     sync.Pool
	stopping chan struct{}
}

// NewCollector starts a collector; Close stops it.
func NewCollector(logger hclog.Logger) (*Collector, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("failed to start log collector: inotify: %w", err)
	}
	c := &Collector{
		logger:   logger.Named("logs"),
		inotify:  os.NewFile(uintptr(fd), "inotify"),
		watches:  map[int32]chan struct{}{},
		stopping: make(chan struct{}),
		bufs:     sync.Pool{New: func() any { b := make([]byte, copyChunk); return &b }},
	}
	c.wg.Add(1)
	go c.dispatch()
	return c, nil
}

// dispatch wakes the stream of every watch that saw a write.
func (c *Collector) dispatch() {
	defer c.wg.Done()
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+16))
	for {
		n, err := c.inotify.Read(buf)
		if err != nil {
			return // closed
		}
		c.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			wd := int32(uint32(buf[off]) | uint32(buf[off+1])<<8 | uint32(buf[off+2])<<16 | uint32(buf[off+3])<<24)
			nameLen := int(uint32(buf[off+12]) | uint32(buf[off+13])<<8 | uint32(buf[off+14])<<16 | uint32(buf[off+15])<<24)
			if ch, ok := c.watches[wd]; ok {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
			off += unix.SizeofInotifyEvent + nameLen
		}
		c.mu.Unlock()
	}
}

// Close stops collecting: every task's stream stops where it is, its spool
// and position kept, so that a later collector goes on from there.
func (c *Collector) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.stopping)
	c.mu.Unlock()
	_ = c.inotify.Close()
	c.wg.Wait()
}

// Target names where a task's logs go.
type Target struct {
	AllocDir string // everything is opened beneath it
	LogDir   string // alloc/logs: the rotated files
	SpoolDir string // the task's own directory: the spools
	Task     string // the task name: files are <Task>.stdout.N, .stderr.N
}

// Task is the log collection of one task.
type Task struct {
	c       *Collector
	streams []*stream
	// Stdout and Stderr are the paths the shim appends to.
	Stdout, Stderr string
	holdMu         sync.Mutex
	holds          []*os.File // keep Stdout and Stderr valid until Release
	stop           chan bool  // true: remove the spools after the last copy
	done           chan struct{}
}

// Start begins collecting a task's output. fresh starts a new spool (a new
// task start); otherwise collection goes on from the saved position (a
// recovered task).
func (c *Collector) Start(t Target, lim Limits, fresh bool) (_ *Task, err error) {
	if lim.MaxFiles < 1 || lim.MaxFileSize < 1 {
		return nil, fmt.Errorf("invalid log limits: max_files %d and max_file_size %d must be at least 1", lim.MaxFiles, lim.MaxFileSize)
	}
	logDir, err := openDirBeneath(t.AllocDir, t.LogDir)
	if err != nil {
		return nil, err
	}
	spoolDir, err := openDirBeneath(t.AllocDir, t.SpoolDir)
	if err != nil {
		logDir.Close()
		return nil, err
	}
	tk := &Task{c: c, stop: make(chan bool, 1), done: make(chan struct{})}
	defer func() {
		if err != nil {
			tk.closeFiles()
			logDir.Close()
			spoolDir.Close()
		}
	}()
	for _, name := range []string{"stdout", "stderr"} {
		s, err := openStream(logDir, spoolDir, t.Task+"."+name, lim, fresh)
		if err != nil {
			return nil, err
		}
		tk.streams = append(tk.streams, s)
		if s.skipped > 0 {
			c.logger.Warn("skipped task output that piled up while no collector ran, beyond what the log files keep", "task", t.Task, "stream", name, "bytes", s.skipped)
		}
		w, err := s.spoolPath()
		if err != nil {
			return nil, err
		}
		tk.holds = append(tk.holds, w)
	}
	tk.Stdout, tk.Stderr = procPath(tk.holds[0]), procPath(tk.holds[1])
	kick := make(chan struct{}, 1)
	var wds []int32
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("failed to start log collection: the collector is closed")
	}
	for _, s := range tk.streams {
		wd, err := unix.InotifyAddWatch(int(c.inotify.Fd()), procPath(s.spool), unix.IN_MODIFY)
		if err != nil {
			c.mu.Unlock()
			for _, wd := range wds {
				_, _ = unix.InotifyRmWatch(int(c.inotify.Fd()), uint32(wd))
			}
			return nil, fmt.Errorf("failed to watch spool: %w", err)
		}
		wds = append(wds, int32(wd))
		c.watches[int32(wd)] = kick
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go tk.run(kick, wds, logDir, spoolDir)
	return tk, nil
}

// run copies on every write until the task's collection stops.
func (tk *Task) run(kick chan struct{}, wds []int32, logDir, spoolDir *os.File) {
	c := tk.c
	defer c.wg.Done()
	defer close(tk.done)
	defer func() {
		c.mu.Lock()
		for _, wd := range wds {
			delete(c.watches, wd)
			if !c.closed {
				_, _ = unix.InotifyRmWatch(int(c.inotify.Fd()), uint32(wd))
			}
		}
		c.mu.Unlock()
		tk.closeFiles()
		logDir.Close()
		spoolDir.Close()
	}()
	for {
		tk.drain()
		select {
		case <-kick:
		case remove := <-tk.stop:
			tk.drain()
			if remove {
				for _, s := range tk.streams {
					s.remove()
				}
			}
			return
		case <-c.stopping:
			return
		}
	}
}

func (tk *Task) drain() {
	bp := tk.c.bufs.Get().(*[]byte)
	defer tk.c.bufs.Put(bp)
	for _, s := range tk.streams {
		if err := s.drain(*bp); err != nil {
			// the spool keeps what could not be copied; the next write or
			// a restarted collector tries again
			tk.c.logger.Error("failed to copy task output", "stream", s.base, "error", err)
		}
	}
}

// Release drops the descriptors behind Stdout and Stderr once the shim has
// opened its own.
func (tk *Task) Release() {
	tk.holdMu.Lock()
	defer tk.holdMu.Unlock()
	for _, f := range tk.holds {
		f.Close()
	}
	tk.holds = nil
}

func (tk *Task) closeFiles() {
	tk.Release()
	for _, s := range tk.streams {
		s.close()
	}
}

// Stop copies what is left and ends the collection; with remove (the task
// is gone) the spools are deleted too. It returns once the copy is done.
func (tk *Task) Stop(remove bool) {
	select {
	case tk.stop <- remove:
	default:
	}
	<-tk.done
}
