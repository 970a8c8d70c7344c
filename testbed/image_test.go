package testbed

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBuildBusyboxIsDeterministic(t *testing.T) {
	Require(t, false, "busybox")
	a, err := BuildBusybox()
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildBusybox()
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest() != b.Digest() {
		t.Fatalf("digests differ: %s %s", a.Digest(), b.Digest())
	}
	if len(a.Blobs) != 2 || len(a.Manifest.Layers) != 1 {
		t.Fatalf("want config + one layer, got %d blobs, %d layers", len(a.Blobs), len(a.Manifest.Layers))
	}
}

func TestSplitRepoTag(t *testing.T) {
	for in, want := range map[string][2]string{
		"demo/busybox:1":            {"demo/busybox", "1"},
		"demo/busybox":              {"demo/busybox", "latest"},
		"127.0.0.1:5000/demo/bb":    {"127.0.0.1:5000/demo/bb", "latest"},
		"127.0.0.1:5000/demo/bb:v2": {"127.0.0.1:5000/demo/bb", "v2"},
	} {
		n, tag := SplitRepoTag(in)
		if n != want[0] || tag != want[1] {
			t.Errorf("SplitRepoTag(%q) = %q, %q; want %q", in, n, tag, want)
		}
	}
}

func TestDeriveAddsLayers(t *testing.T) {
	Require(t, false, "busybox")
	base, err := BuildBusybox()
	if err != nil {
		t.Fatal(err)
	}
	a, err := FillerLayer("a", 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := FillerLayer("a", 1<<20, 1)
	if a.DiffID != a2.DiffID || len(a.Blob) < 1<<20 {
		t.Fatalf("filler layer not deterministic or compressed: %s %s %d", a.DiffID, a2.DiffID, len(a.Blob))
	}
	img, err := base.Derive(func(c *ocispec.ImageConfig) { c.Cmd = []string{"true"} }, a)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(img.Manifest.Layers); n != 2 {
		t.Fatalf("want 2 layers, got %d", n)
	}
	if base.Config.Config.Cmd[0] != "sh" || img.Config.Config.Cmd[0] != "true" {
		t.Fatalf("config edits leaked: base %v, derived %v", base.Config.Config.Cmd, img.Config.Config.Cmd)
	}
}
