package driver

import (
	"fmt"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
	"github.com/nomad-containerd/nomad-driver-containerd/userns"
)

// taskStateVersion is the current format of TaskState. Decoding accepts
// every older version and upgrades it; a newer one is refused. When the
// format changes: bump it, keep the older fields decodable, add the upgrade
// step to upgradeState, and commit a fixture of the new version
// (driver/testdata, see state_test.go).
//
// Version 2 added UserNS.
const taskStateVersion = 2

// TaskState is what the driver persists in Nomad's task handle so that a
// restarted plugin can reattach. It holds no credentials.
type TaskState struct {
	Version     int
	ContainerID string
	Namespace   string
	ImageRef    string
	ImageDigest string
	StartedAt   time.Time
	PID         uint32
	// Network is the driver-run CNI network to tear down; nil for host,
	// none and Nomad's group namespace.
	Network *network.Attachment
	// PortMap is the label -> container port map handed back to Nomad.
	PortMap map[string]int
	// PullOnly marks a pull_only task: it has no container (ContainerID
	// is the name one would have) and exited 0 at StartedAt. Absent, so
	// false, in the states of earlier plugins.
	PullOnly bool `codec:",omitempty"`
	// Logs is set when the driver collects the task's output.
	Logs *LogState
	// UserNS is the host ID range the task's user namespace maps onto;
	// nil for a task in the host's user namespace (and in every version 1
	// state).
	UserNS *userns.Range
}

// decodeState reads the task state from Nomad's handle and brings it to the
// current version. The version is read first, so that a state written by a
// newer plugin is refused as such rather than half decoded.
func decodeState(handle *drivers.TaskHandle) (TaskState, error) {
	var v struct{ Version int }
	if err := handle.GetDriverState(&v); err != nil {
		return TaskState{}, fmt.Errorf("failed to decode task state: %w", err)
	}
	if v.Version > taskStateVersion {
		return TaskState{}, fmt.Errorf("task state version %d was written by a newer plugin: this one reads versions 1 to %d; the task is left as it is", v.Version, taskStateVersion)
	}
	var ts TaskState
	if err := handle.GetDriverState(&ts); err != nil {
		return TaskState{}, fmt.Errorf("failed to decode task state version %d: %w", v.Version, err)
	}
	return ts, upgradeState(&ts)
}

// upgradeState checks a decoded state and brings it to the current version.
func upgradeState(s *TaskState) error {
	switch {
	case s.Version == taskStateVersion:
	case s.Version == 1:
		// version 1 knew no user namespaces: its tasks run in the host's
		s.UserNS = nil
		s.Version = taskStateVersion
	case s.Version > taskStateVersion:
		return fmt.Errorf("task state version %d is newer than this plugin's %d", s.Version, taskStateVersion)
	default:
		return fmt.Errorf("task state version %d is not supported: versions 1 to %d are", s.Version, taskStateVersion)
	}
	if s.ContainerID == "" {
		return fmt.Errorf("task state has no container ID")
	}
	return nil
}
