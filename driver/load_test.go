package driver

import (
	"testing"

	"github.com/shoenig/test/must"
)

func TestLoadedName(t *testing.T) {
	const alloc = "0b8d1c2e-1111-2222-3333-444455556666"
	cases := []struct{ ref, want string }{
		{"redis:7", "load.nomad.invalid/" + alloc + "/docker.io/library/redis:7"},
		{"docker.io/library/busybox:test", "load.nomad.invalid/" + alloc + "/docker.io/library/busybox:test"},
		{"registry.example.com:5000/team/app:1", "load.nomad.invalid/" + alloc + "/registry.example.com-5000/team/app:1"},
		{"app@sha256:" + sixtyFour, "load.nomad.invalid/" + alloc + "/docker.io/library/app@sha256:" + sixtyFour},
	}
	for _, c := range cases {
		got, err := loadedName(alloc, c.ref)
		must.NoError(t, err, must.Sprint(c.ref))
		must.Eq(t, c.want, got)
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
