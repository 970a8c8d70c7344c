package driver

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// Labels put on every container the driver creates, so that `ctr -n nomad
// containers info` and `nerdctl -n nomad ps` show which Nomad task it is.
const (
	labelPrefix    = "nomad."
	labelDriver    = labelPrefix + "driver"
	labelAllocID   = labelPrefix + "alloc_id"
	labelJobID     = labelPrefix + "job_id"
	labelJobName   = labelPrefix + "job_name"
	labelGroup     = labelPrefix + "task_group"
	labelTask      = labelPrefix + "task_name"
	labelNamespace = labelPrefix + "namespace"
	labelNerdctl   = "nerdctl/name"
)

// labelNetwork is the task's driver-run CNI network ("bridge" or
// "cni/<name>"), so that the network of a dangling container can be torn
// down without the task's state.
const labelNetwork = labelPrefix + "network"

// labelUserNS is the host ID range of a container's user namespace
// ("2147483648-2147549183"). It is written when the container is created,
// before any task handle exists: a plugin that dies between reserving a
// range and returning the handle leaves a container that holds the range
// and no task state that says so, and the next plugin reads the label.
const labelUserNS = labelPrefix + "userns"

// maxContainerID is containerd's limit on identifier length.
const maxContainerID = 76

// containerID is `<task>-<alloc id>`. Task names that containerd would
// refuse (characters outside [A-Za-z0-9._-] or too long) are shortened and
// made unique with a hash of the original name.
func containerID(taskName, allocID string) string {
	if validIDPart(taskName) && len(taskName)+1+len(allocID) <= maxContainerID {
		return taskName + "-" + allocID
	}
	var b strings.Builder
	sep := true // no separator at the start or twice in a row
	for _, r := range taskName {
		alnum := nameChar(r) && r != '.' && r != '_' && r != '-'
		switch {
		case alnum:
			b.WriteRune(r)
			sep = false
		case !sep:
			b.WriteByte('-')
			sep = true
		}
	}
	clean := strings.Trim(b.String(), "-._")
	sum := sha256.Sum256([]byte(taskName))
	suffix := hex.EncodeToString(sum[:4])
	room := maxContainerID - len(allocID) - len(suffix) - 2
	if len(clean) > room {
		clean = strings.TrimRight(clean[:room], "-._")
	}
	if clean == "" {
		return suffix + "-" + allocID
	}
	return clean + "-" + suffix + "-" + allocID
}

// validIDPart follows containerd's identifier rule: alphanumerics separated
// by single '.', '_' or '-'.
func validIDPart(s string) bool {
	if s == "" {
		return false
	}
	prevSep := true
	for _, r := range s {
		if !nameChar(r) {
			return false
		}
		sep := r == '.' || r == '_' || r == '-'
		if sep && prevSep {
			return false
		}
		prevSep = sep
	}
	return !prevSep
}

// containerLabels merges the task's own labels with the driver's.
func containerLabels(cfg *drivers.TaskConfig, id string, user map[string]string) map[string]string {
	l := make(map[string]string, len(user)+8)
	for k, v := range user {
		l[k] = v
	}
	l[labelDriver] = pluginName
	l[labelAllocID] = cfg.AllocID
	l[labelJobID] = cfg.JobID
	l[labelJobName] = cfg.JobName
	l[labelGroup] = cfg.TaskGroupName
	l[labelTask] = cfg.Name
	l[labelNamespace] = cfg.Namespace
	l[labelNerdctl] = id
	return l
}
