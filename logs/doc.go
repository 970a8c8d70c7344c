// Package logs delivers a task's stdout and stderr into Nomad's
// alloc/logs/<task>.stdout.N and .stderr.N files, rotated the way Nomad's
// logmon rotates them, so that `nomad alloc logs` and `-f` read them
// unchanged, without a process per task.
//
// # How output flows
//
// The containerd shim appends the task's output to a spool file per stream
// (O_APPEND, written by the kernel on the shim's behalf): the shim treats a
// stdio path that is not a fifo as a file to append to. The spool lies in
// the task's own directory, which no container sees (containers get only
// local, secrets and the shared alloc directory), and the shim reaches it
// through /proc/<plugin pid>/fd/<n> of a descriptor opened here beneath
// the allocation directory with no symlink followed. One Collector per
// plugin process then copies each spool into the rotated files, woken by
// inotify (one inotify instance for all tasks): no polling, one goroutine
// and two descriptors per stream while the task runs.
//
// # Why this and not the alternatives
//
//   - A pipe (fifo) read by the plugin, as Nomad's logmon reads one: while
//     the reader is away the task blocks once the pipe buffer (64 KiB, at
//     most 1 MiB) is full, and a task that exits while the reader is away
//     takes what is still in the pipe with it, as a pipe's content lives
//     only while someone holds it open. The spool is a file: the task never
//     waits for the collector, and nothing the shim wrote is lost while the
//     plugin, the collector or the Nomad agent restarts.
//   - A detached collector process the driver starts and reattaches to
//     would have to hold the pipes and its own restart state: a second
//     long-lived process with its own crash cases, for what the spool file
//     already gives.
//   - containerd's file:// log URI makes the shim append to one file with
//     no rotation, and binary:// starts a logging process per task, which
//     is the cost this package removes.
//
// # No line lost or doubled
//
// The copy is 1:1, so the spool offset consumed equals the bytes written
// to the log files. A small state file (the index of the current log file
// and the spool offset at which it began) is replaced atomically (rename)
// before each rotation; the consumed offset is that base plus the current
// file's size, read back from the file itself. A collector killed at any
// point resumes exactly where its writes stopped: there is no window in
// which bytes are written but not counted, or counted but not written.
// Consumed spool ranges are punched out (FALLOC_FL_PUNCH_HOLE), so the
// spool holds on disk only what is not yet copied. While no collector runs
// the spool grows on disk (bounded by the disk, not by a pipe): the task
// is never blocked and never loses output that the log files can keep.
// A collector that finds more in the spool than max_files files hold
// skips the older part (it would be rotated away at once) and resumes at
// the first whole line of the rest, in a new file.
//
// # Safety
//
// The log directory and the spool directory are opened beneath the
// allocation directory with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS);
// every file is opened relative to them with O_NOFOLLOW. A log file name
// that holds anything but a regular file with one link (a planted symlink,
// fifo or hard link) is removed and created afresh, so output never
// reaches another file.
package logs
