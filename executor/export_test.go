package executor

import "os"

// OOMKillsFromFile reads the task's oom_kill counter from the cgroup file
// found at create, as its exit does.
func OOMKillsFromFile(t *Task) (uint64, error) { return readOOMKills(t.oomFile) }

// UserNSFD is the user namespace a staging with idmap uses.
func UserNSFD(idmap string) (*os.File, error) { return usernsFD(idmap) }

// AheadUserNS waits for the user namespace made ahead and returns its
// mapping and descriptor, which stay the made-ahead one's (nil if none).
func AheadUserNS() (string, *os.File) {
	aheadNS.mu.Lock()
	n := aheadNS.next
	aheadNS.mu.Unlock()
	if n == nil {
		return "", nil
	}
	<-n.done
	return n.idmap, n.f
}
