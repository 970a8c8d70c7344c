package testbed

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/opencontainers/go-digest"
)

func TestEStargzLayer(t *testing.T) {
	plain, err := NewLayer(Dir("data", 0o755), File("data/a", 0o644, []byte("hello")))
	if err != nil {
		t.Fatal(err)
	}
	l, err := EStargzLayer(plain, "data/a")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := l.Tar()
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(raw); got != l.DiffID {
		t.Fatalf("diff id %s, the blob unpacks to %s", l.DiffID, got)
	}
	toc := l.Annotations[estargz.TOCJSONDigestAnnotation]
	if !strings.HasPrefix(toc, "sha256:") {
		t.Fatalf("no TOC digest annotation: %v", l.Annotations)
	}
	r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(l.Blob), 0, int64(len(l.Blob))))
	if err != nil {
		t.Fatalf("not eStargz: %v", err)
	}
	if _, ok := r.Lookup("data/a"); !ok {
		t.Fatal("data/a not in the TOC")
	}
	if _, err := EStargzLayer(Layer{Blob: []byte("not gzip")}); err == nil {
		t.Fatal("a blob that is not gzip converted")
	}
}

func TestContainerdOptionsConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		co   ContainerdOptions
		want string
	}{
		{"none", ContainerdOptions{}, ""},
		{"stargz", ContainerdOptions{ProxySnapshotters: map[string]string{"stargz": "/run/s.sock"}},
			"[proxy_plugins.\"stargz\"]\n  type = \"snapshot\"\n  address = \"/run/s.sock\"\n"},
		{"sorted", ContainerdOptions{ProxySnapshotters: map[string]string{"b": "/b", "a": "/a"}},
			"[proxy_plugins.\"a\"]\n  type = \"snapshot\"\n  address = \"/a\"\n[proxy_plugins.\"b\"]\n  type = \"snapshot\"\n  address = \"/b\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.co.config(); got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
