package network

import (
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

func TestGroupNetNSPath(t *testing.T) {
	m, err := New(Config{NetNSDir: "/run/ndc-netns"}, nil)
	must.NoError(t, err)
	for _, tc := range []struct {
		name, alloc, want, err string
	}{
		{"allocation id", "5fc7e8d2-6a36-4a0f-9c4b-0e2d8a1f3b7c", "/run/ndc-netns/5fc7e8d2-6a36-4a0f-9c4b-0e2d8a1f3b7c", ""},
		{"empty", "", "", `alloc id "": want letters, digits`},
		{"a path", "../etc", "", `alloc id "../etc": want letters, digits`},
		{"a slash", "a/b", "", `alloc id "a/b"`},
		{"leading dot", ".x", "", `alloc id ".x"`},
		{"too long", strings.Repeat("a", 201), "", "at most 200 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.GroupNetNSPath(tc.alloc)
			if tc.err != "" {
				must.ErrorContains(t, err, tc.err)
				must.Eq(t, "", got)
				return
			}
			must.NoError(t, err)
			must.Eq(t, tc.want, got)
		})
	}
}
