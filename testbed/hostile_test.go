package testbed

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// The hostile layers keep their names exactly as written, in order.
func TestHostileLayers(t *testing.T) {
	layers, err := HostileLayers("/srv/host")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"dotdot":    {climb + "srv/host/from-dotdot", "/srv/host/from-absolute-name", "srv/" + climb + "srv/host/canary"},
		"symlinks":  {"escape-abs", "escape-abs/from-absolute-symlink", "escape-abs/canary", "escape-rel", "escape-rel/from-relative-symlink"},
		"hardlinks": {"hard-abs", "hard-rel"},
	}
	if len(layers) != len(want) {
		t.Fatalf("got layers %v", layers)
	}
	for name, names := range want {
		l := layers[name]
		raw, err := l.Tar()
		if err != nil {
			t.Fatal(err)
		}
		if digest.FromBytes(raw) != l.DiffID {
			t.Errorf("%s: diff id does not match the tar", name)
		}
		tr := tar.NewReader(bytes.NewReader(raw))
		var got []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, h.Name)
			if h.Typeflag == tar.TypeLink && !strings.HasSuffix(h.Linkname, "srv/host/canary") {
				t.Errorf("%s: hard link %s -> %s", name, h.Name, h.Linkname)
			}
		}
		if strings.Join(got, "\n") != strings.Join(names, "\n") {
			t.Errorf("%s: entries %q, want %q", name, got, names)
		}
	}
}
