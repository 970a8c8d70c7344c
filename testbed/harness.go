package testbed

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/nomad/client/allocdir"
	"github.com/hashicorp/nomad/client/logmon"
	"github.com/hashicorp/nomad/client/taskenv"
	"github.com/hashicorp/nomad/nomad/mock"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
)

// Harness serves a driver over the plugin protocol in-process, as the Nomad
// client talks to it: every call goes through gRPC and the SDK's conversions.
type Harness struct {
	drivers.DriverPlugin
	impl   drivers.DriverPlugin
	client *plugin.GRPCClient
	server *plugin.GRPCServer
	logger hclog.Logger
	t      *testing.T
}

// NewHarness serves d beside a logmon plugin and dispenses its client.
func NewHarness(t *testing.T, d drivers.DriverPlugin) *Harness {
	t.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Name: "harness", Level: hclog.Warn, Output: os.Stderr})
	client, server := plugin.TestPluginGRPCConn(t, map[string]plugin.Plugin{
		base.PluginTypeDriver: drivers.NewDriverPlugin(d, logger),
		base.PluginTypeBase:   &base.PluginBase{Impl: d},
		"logmon":              logmon.NewPlugin(logmon.NewLogMon(logger.Named("logmon"))),
	})
	raw, err := client.Dispense(base.PluginTypeDriver)
	must.NoError(t, err, must.Sprint("failed to dispense the driver plugin"))
	return &Harness{DriverPlugin: raw.(drivers.DriverPlugin), impl: d, client: client, server: server, logger: logger, t: t}
}

// Impl is the driver itself, bypassing the plugin protocol.
func (h *Harness) Impl() drivers.DriverPlugin { return h.impl }

// Kill closes the plugin connection as a dying plugin process would.
func (h *Harness) Kill() {
	_ = h.client.Close()
	h.server.Stop()
}

// CollectsLogs says whether the driver writes alloc/logs itself
// (DisableLogCollection): the Nomad client then starts no logmon.
func (h *Harness) CollectsLogs() bool {
	caps, err := h.impl.Capabilities()
	return err == nil && caps.DisableLogCollection
}

// MkAllocDir builds task's allocation and task directories in a temporary
// directory, fills in the task environment Nomad would give it and, with
// logs, starts a logmon behind the task's stdout and stderr fifos, unless
// the driver collects the logs itself (DisableLogCollection), as the Nomad
// client does. The returned function stops logmon and removes the
// directories.
func (h *Harness) MkAllocDir(task *drivers.TaskConfig, logs bool) func() {
	h.t.Helper()
	logs = logs && !h.CollectsLogs()
	dir, err := os.MkdirTemp("", "nomad_driver_harness-")
	must.NoError(h.t, err)
	td := PrepareTask(h.t, h.logger, dir, task, logs)
	return func() {
		td.Cleanup()
		_ = h.client.Close()
	}
}

// TaskDirs is a task's prepared allocation: directories and log collection.
type TaskDirs struct {
	Alloc  *allocdir.AllocDir
	Task   *allocdir.TaskDir
	logmon logmon.LogMon
	once   sync.Once
}

// Cleanup stops the task's logmon and removes its allocation directory
// (its secrets and private mounts too); it runs at the end of the test
// too, so that a test that failed half way leaves no mount.
func (td *TaskDirs) Cleanup() {
	td.once.Do(func() {
		if td.logmon != nil {
			_ = td.logmon.Stop()
		}
		_ = td.Alloc.Destroy()
	})
}

// PrepareTask builds task's allocation under root the way the Nomad client
// does for an image driver: the shared alloc dir, the task's local, secrets
// and logs dirs, the NOMAD_* environment with container paths and, with logs,
// a logmon reading the task's fifos into alloc/logs.
func PrepareTask(t testing.TB, logger hclog.Logger, root string, task *drivers.TaskConfig, logs bool) *TaskDirs {
	t.Helper()
	ad := allocdir.NewAllocDir(logger, root, task.AllocID)
	must.NoError(t, ad.Build())
	task.AllocDir = ad.AllocDir
	td := ad.NewTaskDir(task.Name)
	must.NoError(t, td.Build(false, nil))
	task.Env = taskEnv(task, td)
	dirs := &TaskDirs{Alloc: ad, Task: td}
	t.Cleanup(dirs.Cleanup)
	if !logs {
		return dirs
	}
	task.StdoutPath = filepath.Join(td.LogDir, "."+task.Name+".stdout.fifo")
	task.StderrPath = filepath.Join(td.LogDir, "."+task.Name+".stderr.fifo")
	lm := logmon.NewLogMon(logger.Named("logmon"))
	err := lm.Start(&logmon.LogConfig{
		LogDir:        td.LogDir,
		StdoutLogFile: task.Name + ".stdout",
		StderrLogFile: task.Name + ".stderr",
		StdoutFifo:    task.StdoutPath,
		StderrFifo:    task.StderrPath,
		MaxFiles:      10,
		MaxFileSizeMB: 10,
	})
	if err != nil {
		dirs.Cleanup()
		t.Fatalf("failed to start logmon: %v", err)
	}
	dirs.logmon = lm
	return dirs
}

// taskEnv is the environment the Nomad client gives an image-isolated task,
// merged under what the test set itself.
func taskEnv(task *drivers.TaskConfig, td *allocdir.TaskDir) map[string]string {
	alloc := mock.Alloc()
	alloc.ID = task.AllocID
	if task.Resources != nil && task.Resources.NomadResources != nil {
		alloc.AllocatedResources.Tasks[task.Name] = task.Resources.NomadResources
	}
	b := taskenv.NewBuilder(mock.Node(), alloc, &structs.Task{Name: task.Name, Env: task.Env}, "global")
	b.SetClientTaskRoot(td.Dir)
	b.SetClientSharedAllocDir(td.SharedAllocDir)
	b.SetClientTaskLocalDir(td.LocalDir)
	b.SetClientTaskSecretsDir(td.SecretsDir)
	b.SetAllocDir(allocdir.SharedAllocContainerPath)
	b.SetTaskLocalDir(allocdir.TaskLocalContainerPath)
	b.SetSecretsDir(allocdir.TaskSecretsContainerPath)
	env := b.Build().Map()
	for k, v := range task.Env {
		env[k] = v
	}
	return env
}

// Target is the address the harness serves the plugin on, for a second
// client that speaks the protocol its own way.
func (h *Harness) Target() string { return h.client.Conn.Target() }
