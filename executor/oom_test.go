package executor

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOOMCounterPath(t *testing.T) {
	for _, tc := range []struct {
		name, cgroup, want string
	}{
		{"v1 hybrid", "9:name=systemd:/nomad/web-1\n4:memory:/nomad/web-1\n0::/nomad/web-1\n",
			"/sys/fs/cgroup/memory/nomad/web-1/memory.oom_control"},
		{"v1 joined controllers", "3:memory,hugetlb:/a/b\n", "/sys/fs/cgroup/memory/a/b/memory.oom_control"},
		{"v2", "0::/system.slice/nomad-web.scope\n", "/sys/fs/cgroup/system.slice/nomad-web.scope/memory.events"},
		{"no memory controller", "2:cpu:/x\n1:name=systemd:/x\n", ""},
		{"empty", "", ""},
		{"garbage", "memory\n4:memory\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := oomCounterPath([]byte(tc.cgroup)); got != tc.want {
				t.Fatalf("oomCounterPath(%q) = %q, expected %q", tc.cgroup, got, tc.want)
			}
		})
	}
}

func TestReadOOMKills(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          uint64
		fail          bool
	}{
		{"v1 oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", 2, false},
		{"v2 events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n", 1, false},
		{"none yet", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", 0, false},
		{"old kernel without the counter", "oom_kill_disable 0\nunder_oom 0\n", 0, true},
		{"not a number", "oom_kill x\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readOOMKills(path)
			if (err != nil) != tc.fail || got != tc.want {
				t.Fatalf("readOOMKills = %d, %v; expected %d (error: %v)", got, err, tc.want, tc.fail)
			}
		})
	}
	if _, err := readOOMKills(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("expected an error for a missing file")
	}
}
