package executor

import (
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/shoenig/test/must"
)

func TestCommonDir(t *testing.T) {
	for _, tc := range []struct {
		dirs []string
		want string
	}{
		{[]string{"/s/snapshots/3/fs"}, "/s/snapshots/3"},
		{[]string{"/s/snapshots/3/fs", "/s/snapshots/2/fs", "/s/snapshots/1/fs"}, "/s/snapshots"},
		{[]string{"/s/snapshots/12/fs", "/s/snapshots/1/fs"}, "/s/snapshots"},
		{[]string{"/a/x/fs", "/b/y/fs"}, "/"},
	} {
		must.Eq(t, tc.want, commonDir(tc.dirs), must.Sprintf("%v", tc.dirs))
	}
}

func TestMappedOverlay(t *testing.T) {
	overlay := func(opts ...string) []mount.Mount {
		return []mount.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
	}
	for _, tc := range []struct {
		name string
		ms   []mount.Mount
		want bool
	}{
		{"idmapped layers", overlay("workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2", "uidmap=0:1:65536", "gidmap=0:1:65536"), true},
		{"plain overlay", overlay("workdir=/w", "upperdir=/u", "lowerdir=/l1"), false},
		{"no layers", overlay("uidmap=0:1:65536"), false},
		{"a bind", []mount.Mount{{Type: "bind", Source: "/s", Options: []string{"rbind", "uidmap=0:1:65536"}}}, false},
		{"two mounts", append(overlay("lowerdir=/l", "uidmap=0:1:1"), overlay("lowerdir=/l", "uidmap=0:1:1")...), false},
	} {
		t.Run(tc.name, func(t *testing.T) { must.Eq(t, tc.want, mappedOverlay(tc.ms)) })
	}
}
