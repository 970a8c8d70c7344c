package driver

import (
	"fmt"
	"time"
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
