package driver

import (
	"fmt"
	"time"

	"github.com/nomad-containerd/nomad-driver-containerd/network"
)

// taskStateVersion is the current format of TaskState. Decoding accepts
// every older version and upgrades it; a newer one is refused.
const taskStateVersion = 1

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
}

// upgradeState checks a decoded state and brings it to the current version.
func upgradeState(s *TaskState) error {
	switch {
	case s.Version == taskStateVersion:
	case s.Version > taskStateVersion:
		return fmt.Errorf("task state version %d is newer than this plugin's %d", s.Version, taskStateVersion)
	default:
		return fmt.Errorf("task state version %d is not supported", s.Version)
	}
	if s.ContainerID == "" {
		return fmt.Errorf("task state has no container ID")
	}
	return nil
}
