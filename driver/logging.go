package driver

import (
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	tasklogs "github.com/nomad-containerd/nomad-driver-containerd/logs"
)

// Who collects a task's stdout and stderr into alloc/logs.
const (
	collectorNomad  = "nomad"  // Nomad's logmon, a process per task
	collectorDriver = "driver" // the plugin's own collector (package logs)
)

// Nomad's defaults for a task's logs block.
const (
	defaultLogMaxFiles  = 10
	defaultLogMaxFileMB = 10
)

// LoggingConfig says who collects task output, and the rotation limits the
// driver's collector applies: Nomad 1.6's TaskConfig does not carry the
// task's logs block, so they are the plugin's.
type LoggingConfig struct {
	Driver bool
	Limits tasklogs.Limits
}

type rawLogging struct {
	Collector   string `codec:"collector"`
	MaxFiles    int    `codec:"max_files"`
	MaxFileSize int    `codec:"max_file_size"`
}

// parseLoggingConfig validates the logging block; an absent block is the
// driver's own collector with Nomad's limits.
func parseLoggingConfig(raw rawLogging) (LoggingConfig, error) {
	if raw == (rawLogging{}) {
		raw = rawLogging{Collector: collectorDriver, MaxFiles: defaultLogMaxFiles, MaxFileSize: defaultLogMaxFileMB}
	}
	var lc LoggingConfig
	switch raw.Collector {
	case collectorNomad:
	case collectorDriver:
		lc.Driver = true
	default:
		return lc, fmt.Errorf("logging.collector: %q is not a log collector: use %q (Nomad's logmon) or %q (the driver's own)", raw.Collector, collectorNomad, collectorDriver)
	}
	if raw.MaxFiles < 1 {
		return lc, fmt.Errorf("logging.max_files: %d must be at least 1", raw.MaxFiles)
	}
	if raw.MaxFileSize < 1 {
		return lc, fmt.Errorf("logging.max_file_size: %d must be at least 1 (MB)", raw.MaxFileSize)
	}
	lc.Limits = tasklogs.Limits{MaxFiles: raw.MaxFiles, MaxFileSize: int64(raw.MaxFileSize) * 1024 * 1024}
	return lc, nil
}

// LogState is the persisted part of a task whose output the driver
// collects: a recovered task goes on with the same limits.
type LogState struct {
	MaxFiles    int
	MaxFileSize int64
}

// logCollector is the plugin's one collector, started with the first task
// that needs it and stopped at Shutdown (the spools keep what comes in
// until the next plugin's collector).
type logCollector struct {
	once sync.Once
	mu   sync.Mutex
	c    *tasklogs.Collector
	err  error
}

func (l *logCollector) get(logger hclog.Logger) (*tasklogs.Collector, error) {
	l.once.Do(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.c, l.err = tasklogs.NewCollector(logger)
	})
	return l.c, l.err
}

func (l *logCollector) close() {
	l.once.Do(func() {}) // none starts after Shutdown
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		l.c.Close()
	}
}

// logTarget is where cfg's output goes: its alloc/logs, with the spools
// in the task's own directory, which no container sees.
func logTarget(cfg *drivers.TaskConfig) tasklogs.Target {
	td := cfg.TaskDir()
	return tasklogs.Target{AllocDir: cfg.AllocDir, LogDir: td.LogDir, SpoolDir: td.Dir, Task: cfg.Name}
}

// start begins collecting cfg's output: fresh for a new start, from the
// saved position for a recovered task.
func (l *logCollector) start(logger hclog.Logger, cfg *drivers.TaskConfig, ls LogState, fresh bool) (*tasklogs.Task, error) {
	c, err := l.get(logger)
	if err != nil {
		return nil, err
	}
	tk, err := c.Start(logTarget(cfg), tasklogs.Limits{MaxFiles: ls.MaxFiles, MaxFileSize: ls.MaxFileSize}, fresh)
	if err != nil {
		return nil, fmt.Errorf("failed to collect task logs: %w", err)
	}
	return tk, nil
}
