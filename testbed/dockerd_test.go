package testbed

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestDockerArchive reads back what `docker load` reads: the manifest
// names the tag, the config and each layer, whose uncompressed digest is
// the config's diff ID.
func TestDockerArchive(t *testing.T) {
	img, err := BuildImage(ocispec.ImageConfig{Cmd: []string{"sh"}}, mustLayer(t, File("a", 0o644, []byte("a"))), mustLayer(t, File("b", 0o644, []byte("b"))))
	if err != nil {
		t.Fatal(err)
	}
	archive, err := img.DockerArchive("busybox:bench")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, []string{"busybox:bench"}) {
		t.Fatalf("manifest: %+v", manifest)
	}
	if !bytes.Equal(files[manifest[0].Config], img.Blobs[img.Manifest.Config.Digest]) {
		t.Errorf("config %s is not the image's config", manifest[0].Config)
	}
	if len(manifest[0].Layers) != 2 {
		t.Fatalf("layers: %v", manifest[0].Layers)
	}
	for i, name := range manifest[0].Layers {
		if got := digest.FromBytes(files[name]); got != img.Config.RootFS.DiffIDs[i] {
			t.Errorf("layer %d (%s): digest %s, diff ID %s", i, name, got, img.Config.RootFS.DiffIDs[i])
		}
	}
}

func mustLayer(t *testing.T, entries ...Entry) Layer {
	t.Helper()
	l, err := NewLayer(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestDockerNetLeftovers: what dockerd made for its network is removed,
// never what was there before or belongs to others (CNI's rules).
func TestDockerNetLeftovers(t *testing.T) {
	n := dockerNet{bridge: "ndcabc123", subnet: "10.215.7.0/24", before: &iptState{chains: map[string]string{
		"filter/FORWARD": "ACCEPT", "filter/CNI-FORWARD": "-", "filter/DOCKER-USER": "-",
	}}}
	st := &iptState{chains: map[string]string{
		"filter/FORWARD": "ACCEPT", "filter/CNI-FORWARD": "-", "filter/DOCKER-USER": "-",
		"filter/DOCKER": "-", "filter/DOCKER-ISOLATION-STAGE-1": "-", "nat/DOCKER": "-",
	}}
	for _, r := range []struct{ table, chain, line string }{
		{"filter", "FORWARD", "-A FORWARD -j CNI-FORWARD"},
		{"filter", "FORWARD", "-A FORWARD -o ndcabc123 -j DOCKER"},
		{"filter", "FORWARD", "-A FORWARD -i ndcabc123 ! -o ndcabc123 -j ACCEPT"},
		{"filter", "DOCKER", "-A DOCKER -i ndcabc123 -j RETURN"},
		{"nat", "POSTROUTING", "-A POSTROUTING -s 10.215.7.0/24 ! -o ndcabc123 -j MASQUERADE"},
		{"nat", "POSTROUTING", "-A POSTROUTING -s 10.215.8.0/24 -j MASQUERADE"},
		{"filter", "FORWARD", "-A FORWARD -o ndcabc1234 -j ACCEPT"},
	} {
		st.rules = append(st.rules, iptRule{table: r.table, chain: r.chain, line: r.line})
	}
	rules, chains := n.leftovers(st)
	var lines []string
	for _, r := range rules {
		lines = append(lines, r.line)
	}
	wantRules := []string{
		"-A FORWARD -o ndcabc123 -j DOCKER",
		"-A FORWARD -i ndcabc123 ! -o ndcabc123 -j ACCEPT",
		"-A POSTROUTING -s 10.215.7.0/24 ! -o ndcabc123 -j MASQUERADE",
	}
	if !slices.Equal(lines, wantRules) {
		t.Errorf("rules:\n got %q\nwant %q", lines, wantRules)
	}
	if got, want := sortedKeys(chains), []string{"filter/DOCKER", "filter/DOCKER-ISOLATION-STAGE-1", "nat/DOCKER"}; !slices.Equal(got, want) {
		t.Errorf("chains: got %v, want %v", got, want)
	}
}
