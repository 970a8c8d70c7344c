package driver

import (
	"testing"

	rspecfeatures "github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/shoenig/test/must"
)

func TestUserNSMissing(t *testing.T) {
	yes, no := true, false
	idmap := func(on *bool) *rspecfeatures.Features {
		return &rspecfeatures.Features{Linux: &rspecfeatures.Linux{MountExtensions: &rspecfeatures.MountExtensions{IDMap: &rspecfeatures.IDMap{Enabled: on}}}}
	}
	overlay := []string{"rebase", "remap-ids"}
	for _, tc := range []struct {
		name     string
		caps     []string
		features any
		kernel   string
		want     []string
	}{
		{name: "all there", caps: overlay, features: idmap(&yes), kernel: "6.18.44-fc-v1272"},
		{name: "kernel 6.3 exactly", caps: overlay, features: idmap(&yes), kernel: "6.3.0"},
		{name: "snapshotter without remap-ids", caps: []string{"rebase"}, features: idmap(&yes), kernel: "6.1.0-18-amd64",
			want: []string{"snapshotter remap-ids", "kernel 6.3 or later (idmapped tmpfs)"}},
		{name: "runc 1.1 (no mount extensions)", caps: overlay, features: &rspecfeatures.Features{}, kernel: "6.8.0",
			want: []string{"runtime idmap mounts (runc 1.2 or later)"}},
		{name: "idmap disabled", caps: overlay, features: idmap(&no), kernel: "6.8.0",
			want: []string{"runtime idmap mounts (runc 1.2 or later)"}},
		{name: "no features", caps: overlay, features: nil, kernel: "7.0",
			want: []string{"runtime idmap mounts (runc 1.2 or later)"}},
		{name: "unreadable kernel", caps: overlay, features: idmap(&yes), kernel: "",
			want: []string{"kernel 6.3 or later (idmapped tmpfs)"}},
		{name: "kernel 5.19", caps: overlay, features: idmap(&yes), kernel: "5.19.17",
			want: []string{"kernel 6.3 or later (idmapped tmpfs)"}},
		{name: "kernel 6.10rc", caps: overlay, features: idmap(&yes), kernel: "6.10rc1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must.Eq(t, tc.want, usernsMissing(tc.caps, tc.features, tc.kernel))
		})
	}
}
