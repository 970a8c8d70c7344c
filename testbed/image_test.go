package testbed

import "testing"

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
