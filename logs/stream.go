package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Limits are the rotation limits of one stream, as in Nomad's logs block.
type Limits struct {
	MaxFiles    int   // log files kept per stream
	MaxFileSize int64 // bytes per log file
}

// copyChunk is how much one copy step reads from the spool.
const copyChunk = 64 * 1024

// stream copies one spool file into the rotated files <base>.N.
type stream struct {
	base     string // "<task>.stdout"
	logDir   *os.File
	spoolDir *os.File
	spool    *os.File // the spool, read and freed (never written) here
	lim      Limits

	idx   int      // index of the current log file
	start int64    // spool offset at which the current log file began
	cur   *os.File // the current log file
	size  int64    // its size

	skipped int64 // backlog bytes skipped when the stream was opened
}

func (s *stream) spoolName() string { return s.base + ".spool" }
func (s *stream) stateName() string { return s.base + ".pos" }

// openStream opens the stream's spool (created empty when fresh) and its
// position: the saved one, or for a fresh stream the last log file Nomad's
// rotator would continue (the highest index, as after a task restart).
func openStream(logDir, spoolDir *os.File, base string, lim Limits, fresh bool) (*stream, error) {
	s := &stream{base: base, logDir: logDir, spoolDir: spoolDir, lim: lim}
	if fresh {
		for _, name := range []string{s.spoolName(), s.stateName()} {
			if err := unix.Unlinkat(int(spoolDir.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return nil, fmt.Errorf("failed to remove old spool file %s: %w", name, err)
			}
		}
	}
	spool, err := openPlain(spoolDir, s.spoolName(), unix.O_RDWR) // written by punching holes only
	if err != nil {
		return nil, err
	}
	s.spool = spool
	idx, start, err := s.readState()
	if errors.Is(err, os.ErrNotExist) {
		if idx, err = lastIndex(logDir, base); err == nil {
			err = s.openLog(idx, 0)
		}
		if err == nil {
			// the last file's content came before this spool
			s.start = -s.size
			err = s.writeState()
		}
	} else if err == nil {
		if err = s.openLog(idx, start); err == nil {
			s.skipped, err = s.skipBacklog()
		}
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// spoolPath is what the shim opens to append to the spool.
func (s *stream) spoolPath() (*os.File, error) {
	return openPlain(s.spoolDir, s.spoolName(), unix.O_WRONLY|unix.O_APPEND)
}

func (s *stream) readState() (int, int64, error) {
	f, err := openAt(s.spoolDir, s.stateName(), unix.O_RDONLY)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 128))
	if err != nil {
		return 0, 0, fmt.Errorf("failed to read log position: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0, 0, fmt.Errorf("log position %s is malformed: %q", f.Name(), b)
	}
	idx, err1 := strconv.Atoi(fields[0])
	start, err2 := strconv.ParseInt(fields[1], 10, 64)
	if err1 != nil || err2 != nil || idx < 0 {
		return 0, 0, fmt.Errorf("log position %s is malformed: %q", f.Name(), b)
	}
	return idx, start, nil
}

// writeState replaces the position file atomically.
func (s *stream) writeState() error {
	tmp := s.stateName() + ".tmp"
	f, err := openPlain(s.spoolDir, tmp, unix.O_WRONLY|unix.O_TRUNC)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%d %d\n", s.idx, s.start)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(int(s.spoolDir.Fd()), tmp, int(s.spoolDir.Fd()), s.stateName())
	}
	if err != nil {
		return fmt.Errorf("failed to save log position: %w", err)
	}
	return nil
}

// openLog makes log file idx, which begins at spool offset start, the
// current one.
func (s *stream) openLog(idx int, start int64) error {
	f, err := openPlain(s.logDir, s.base+"."+strconv.Itoa(idx), unix.O_WRONLY)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("failed to stat log file: %w", err)
	}
	if s.cur != nil {
		s.cur.Close()
	}
	s.cur, s.idx, s.start, s.size = f, idx, start, st.Size()
	return nil
}

// rotate moves on to the next log file and removes those beyond MaxFiles.
func (s *stream) rotate() error { return s.rotateAt(s.start + s.size) }

// rotateAt moves on to the next log file, which begins at spool offset
// start, and removes those beyond MaxFiles. The position is saved before
// the new file exists: a collector killed in between finds the new file
// missing (empty) and goes on from the same offset.
func (s *stream) rotateAt(start int64) error {
	next := s.idx + 1
	s.idx, s.start = next, start
	if err := s.writeState(); err != nil {
		return err
	}
	if err := s.openLog(next, start); err != nil {
		return err
	}
	for old := next - s.lim.MaxFiles; old >= 0; old-- {
		err := unix.Unlinkat(int(s.logDir.Fd()), s.base+"."+strconv.Itoa(old), 0)
		if errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			return fmt.Errorf("failed to remove old log file: %w", err)
		}
	}
	return nil
}

// skipBacklog moves the position past the part of a backlog that the log
// files could not keep anyway: output that piled up in the spool while no
// collector ran, beyond MaxFiles × MaxFileSize, would be copied only to be
// rotated away. The copy resumes at the first whole line of what the files
// can hold, in a new file; it returns the bytes skipped.
func (s *stream) skipBacklog() (int64, error) {
	st, err := s.spool.Stat()
	if err != nil {
		return 0, fmt.Errorf("failed to stat spool: %w", err)
	}
	keep := int64(s.lim.MaxFiles) * s.lim.MaxFileSize
	off := s.start + s.size
	if st.Size()-off <= keep {
		return 0, nil
	}
	from := st.Size() - keep
	buf := make([]byte, 4096)
	n, err := s.spool.ReadAt(buf, from-1)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("failed to read spool: %w", err)
	}
	if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
		from += int64(i) // the byte after that newline
	}
	if err := s.rotateAt(from); err != nil {
		return 0, err
	}
	return from - off, nil
}

// drain copies everything the spool holds past the current position.
func (s *stream) drain(buf []byte) error {
	for {
		off := s.start + s.size
		n, err := s.spool.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("failed to read spool: %w", err)
		}
		if n == 0 {
			s.punch(off)
			return nil
		}
		chunk := buf[:n]
		room := s.lim.MaxFileSize - s.size
		if int64(len(chunk)) > room {
			// keep lines whole across files where they fit, as Nomad does
			if i := bytes.LastIndexByte(chunk[:max(room, 0)], '\n'); i >= 0 {
				chunk = chunk[:i+1]
			} else if s.size > 0 {
				if err := s.rotate(); err != nil {
					return err
				}
				continue
			} else {
				chunk = chunk[:room]
			}
		}
		w, err := s.cur.WriteAt(chunk, s.size)
		s.size += int64(w)
		if err != nil {
			return fmt.Errorf("failed to write log file: %w", err)
		}
	}
}

// punch frees the disk blocks of the spool below off, which are copied.
func (s *stream) punch(off int64) {
	const block = 4096
	end := off / block * block
	if end <= 0 {
		return
	}
	// best effort: a file system without hole punching keeps the blocks
	_ = unix.Fallocate(int(s.spool.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, end)
}

func (s *stream) close() {
	if s.cur != nil {
		s.cur.Close()
	}
	if s.spool != nil {
		s.spool.Close()
	}
}

// remove deletes the spool and the position file of a finished stream.
func (s *stream) remove() {
	for _, name := range []string{s.spoolName(), s.stateName()} {
		_ = unix.Unlinkat(int(s.spoolDir.Fd()), name, 0)
	}
}

// lastIndex is the highest N of the files <base>.N in dir (0 if none).
func lastIndex(dir *os.File, base string) (int, error) {
	d, err := openAt(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, fmt.Errorf("failed to list log directory: %w", err)
	}
	last := 0
	for _, name := range names {
		if n, err := strconv.Atoi(strings.TrimPrefix(name, base+".")); err == nil && strings.HasPrefix(name, base+".") && n > last {
			last = n
		}
	}
	return last, nil
}
