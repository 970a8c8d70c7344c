package testbed

import (
	"archive/tar"
	"fmt"
	"path"
	"strings"
)

// RawEntry is a tar entry written exactly as given, in the order given:
// its name is not cleaned, so a test can write what an attacker would.
type RawEntry struct {
	Name     string
	Type     byte // tar.TypeReg, tar.TypeDir, tar.TypeSymlink or tar.TypeLink
	Linkname string
	Data     []byte
}

// RawLayer builds a layer from entries as they are.
func RawLayer(entries ...RawEntry) (Layer, error) {
	tes := make([]tarEntry, 0, len(entries))
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Linkname, Mode: 0o644, ModTime: Epoch, Format: tar.FormatPAX}
		switch e.Type {
		case tar.TypeReg:
			h.Size = int64(len(e.Data))
		case tar.TypeDir:
			h.Mode = 0o755
		case tar.TypeSymlink:
			h.Mode = 0o777
		}
		tes = append(tes, tarEntry{name: e.Name, h: h, data: e.Data})
	}
	return tarLayer(tes)
}

// CanaryName is the file HostileLayers aim at in the host directory.
const CanaryName = "canary"

// climb is enough "../" to leave any root filesystem for "/".
var climb = strings.Repeat("../", 32)

// HostileLayers are layers whose entries try to reach hostDir, an absolute
// directory on the host holding CanaryName, each named by its attack:
//
//   - "dotdot": entries whose names climb out with "..", or are absolute;
//   - "symlinks": an absolute and a relative symlink to hostDir, then files
//     written through each;
//   - "hardlinks": hard links to hostDir's canary, by absolute and by
//     climbing names.
//
// Unpacked safely they create nothing outside the root filesystem (or fail
// to unpack); hostDir must stay as it was.
func HostileLayers(hostDir string) (map[string]Layer, error) {
	rel := strings.TrimPrefix(path.Clean(hostDir), "/")
	pwned := []byte("written by a hostile layer\n")
	sets := map[string][]RawEntry{
		"dotdot": {
			{Name: climb + rel + "/from-dotdot", Type: tar.TypeReg, Data: pwned},
			{Name: "/" + rel + "/from-absolute-name", Type: tar.TypeReg, Data: pwned},
			{Name: "srv/" + climb + rel + "/" + CanaryName, Type: tar.TypeReg, Data: pwned},
		},
		"symlinks": {
			{Name: "escape-abs", Type: tar.TypeSymlink, Linkname: hostDir},
			{Name: "escape-abs/from-absolute-symlink", Type: tar.TypeReg, Data: pwned},
			{Name: "escape-abs/" + CanaryName, Type: tar.TypeReg, Data: pwned},
			{Name: "escape-rel", Type: tar.TypeSymlink, Linkname: climb + rel},
			{Name: "escape-rel/from-relative-symlink", Type: tar.TypeReg, Data: pwned},
		},
		"hardlinks": {
			{Name: "hard-abs", Type: tar.TypeLink, Linkname: hostDir + "/" + CanaryName},
			{Name: "hard-rel", Type: tar.TypeLink, Linkname: climb + rel + "/" + CanaryName},
		},
	}
	out := map[string]Layer{}
	for name, entries := range sets {
		l, err := RawLayer(entries...)
		if err != nil {
			return nil, fmt.Errorf("hostile layer %s: %w", name, err)
		}
		out[name] = l
	}
	return out, nil
}
