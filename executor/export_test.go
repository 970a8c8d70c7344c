package executor

// OOMKillsFromFile reads the task's oom_kill counter from the cgroup file
// found at create, as its exit does.
func OOMKillsFromFile(t *Task) (uint64, error) { return readOOMKills(t.oomFile) }
