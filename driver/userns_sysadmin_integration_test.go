//go:build integration

package driver

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
	"golang.org/x/sys/unix"
)

// sysAdminCaps are Nomad's default capabilities and sys_admin.
const sysAdminCaps = `allow_caps = ["audit_write", "chown", "dac_override", "fowner", "fsetid", "kill", "mknod", "net_bind_service", "setfcap", "setgid", "setpcap", "setuid", "sys_chroot", "sys_admin"]`

// A task given CAP_SYS_ADMIN in a user namespace of its own holds it over
// what its namespace owns only: it cannot mount the host's disk, mount the
// host's cgroup hierarchy (whose release_agent runs a program as the
// host's root) or open the host's disk through a node it makes. The same
// task in the host's user namespace mounts the host's cgroup hierarchy,
// which shows that the attacks reach the host where the namespace is
// missing.
func TestUserNamespaceSysAdmin(t *testing.T) {
	b := newCheckedBed(t)
	var root unix.Stat_t
	must.NoError(t, unix.Stat("/", &root))
	major, minor := unix.Major(root.Dev), unix.Minor(root.Dev)
	attacks := map[string]string{
		// the disk that holds the host's root filesystem
		"disk-mount": fmt.Sprintf("mknod /tmp/disk b %d %d 2>/dev/null; mkdir -p /tmp/m && mount -o ro /tmp/disk /tmp/m 2>/dev/null && ls /tmp/m/etc >/dev/null 2>&1", major, minor),
		"disk-read":  fmt.Sprintf("mknod /tmp/dev b %d %d 2>/dev/null; head -c 512 /tmp/dev 2>/dev/null | wc -c | grep -qx 512", major, minor),
		// the root of the host's memory cgroup hierarchy (cgroup v1) or
		// the whole cgroup2 tree
		"cgroup-mount": "mkdir -p /tmp/cg && (mount -t cgroup -o memory cgroup /tmp/cg 2>/dev/null || mount -t cgroup2 cgroup2 /tmp/cg 2>/dev/null) && " +
			"(test -e /tmp/cg/release_agent || test -e /tmp/cg/cgroup.subtree_control)",
	}
	var script strings.Builder
	for name, cmd := range attacks {
		fmt.Fprintf(&script, "if (%s); then echo %s=reached; else echo %s=refused; fi; ", cmd, name, name)
	}
	script.WriteString("echo END")
	run := func(mode string) string {
		raw := sh(script.String())
		raw.UserNSMode = mode
		raw.CapAdd = []string{"sys_admin"}
		return runWith(t, b, sysAdminCaps, newTask(t, raw), nil)
	}

	out := run("auto")
	for name := range attacks {
		must.StrContains(t, out, name+"=refused", must.Sprintf("userns_mode = \"auto\":\n%s", out))
	}
	out = run("host")
	must.StrContains(t, out, "cgroup-mount=reached", must.Sprintf("userns_mode = \"host\": the attack shows nothing:\n%s", out))
}
