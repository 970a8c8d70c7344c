package executor

import (
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/shoenig/test/must"
)

func TestWithoutIDMap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"mapped overlay", []string{"index=off", "workdir=/w", "upperdir=/u", "lowerdir=/a:/b", "uidmap=0:100000:65536", "gidmap=0:100000:65536"},
			[]string{"index=off", "workdir=/w", "upperdir=/u", "lowerdir=/a:/b"}},
		{"plain overlay", []string{"workdir=/w", "upperdir=/u", "lowerdir=/a"}, []string{"workdir=/w", "upperdir=/u", "lowerdir=/a"}},
		{"bind", []string{"rbind", "ro"}, []string{"rbind", "ro"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []mount.Mount{{Type: "overlay", Source: "overlay", Options: tc.in}}
			kept := append([]string(nil), tc.in...)
			got := withoutIDMap(in)
			must.Eq(t, tc.want, got[0].Options)
			must.Eq(t, kept, in[0].Options, must.Sprint("the snapshot's mounts were changed"))
		})
	}
}
