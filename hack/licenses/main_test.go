package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const mitText = `MIT License

Copyright (c) 2024 Example Authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
`

const buslText = `License text copyright (c) 2020 MariaDB Corporation Ab, All Rights Reserved.
"Business Source License" is a trademark of MariaDB Corporation Ab.

Parameters

Licensor:             Example, Inc.
Licensed Work:        Example 2.0.0 or later. The Licensed Work is (c) 2024
                      Example, Inc.
Additional Use Grant: You may make production use of the Licensed Work,
                      provided Your use does not include offering the
                      Licensed Work to third parties on a hosted or embedded
                      basis in order to compete with Example's paid versions.
Change Date:          Four years from the date the Licensed Work is published.
Change License:       MPL 2.0

Notice

Business Source License 1.1

Terms

The Licensor hereby grants you the right to copy, modify, create derivative
works, redistribute, and make non-production use of the Licensed Work. The
Licensor may make an Additional Use Grant, above, permitting limited production use.

Effective on the Change Date, or the fourth anniversary of the first publicly
available distribution of a specific version of the Licensed Work under this
License, whichever comes first, the Licensor hereby grants you rights under
the terms of the Change License, and the rights granted in the paragraph
above terminate.

If your use of the Licensed Work does not comply with the requirements
currently in effect as described in this License, you must purchase a
commercial license from the Licensor, its affiliated entities, or authorized
resellers, or you must refrain from using the Licensed Work.

All copies of the original and modified Licensed Work, and derivative works
of the Licensed Work, are subject to this License. This License applies
separately for each version of the Licensed Work and the Change Date may vary
for each version of the Licensed Work released by Licensor.

You must conspicuously display this License on each original or modified copy
of the Licensed Work. If you receive the Licensed Work in original or
modified form from a third party, the terms and conditions set forth in this
License apply to your use of that work.

Any use of the Licensed Work in violation of this License will automatically
terminate your rights under this License for the current and all other
versions of the Licensed Work.

This License does not grant you any right in any trademark or logo of
Licensor or its affiliates (provided that you may use a trademark or logo of
Licensor as expressly required by this License).

TO THE EXTENT PERMITTED BY APPLICABLE LAW, THE LICENSED WORK IS PROVIDED ON
AN "AS IS" BASIS. LICENSOR HEREBY DISCLAIMS ALL WARRANTIES AND CONDITIONS,
EXPRESS OR IMPLIED, INCLUDING (WITHOUT LIMITATION) WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE, NON-INFRINGEMENT, AND
TITLE.
`

const agplText = `Copyright (C) 2024 Example Authors

This program is free software: you can redistribute it and/or modify it under
the terms of the GNU Affero General Public License as published by the Free
Software Foundation, either version 3 of the License, or (at your option) any
later version.

This program is distributed in the hope that it will be useful, but WITHOUT ANY
WARRANTY; without even the implied warranty of MERCHANTABILITY or FITNESS FOR A
PARTICULAR PURPOSE. See the GNU Affero General Public License for more details.

You should have received a copy of the GNU Affero General Public License along
with this program. If not, see <https://www.gnu.org/licenses/>.
`

const elasticText = `Elastic License 2.0

Limitations

You may not provide the software to third parties as a hosted or managed
service, where the service provides users with access to any substantial set
of the features or functionality of the software.
`

const vendorText = `Copyright (c) 2024 Example, Inc. All rights reserved.

This software is proprietary to Example, Inc. and is provided under the terms
of your subscription agreement. Use requires a valid commercial licence key.
`

// writeModule writes files (name -> content) into a new directory.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheck(t *testing.T) {
	allow, err := parseAllowList([]byte("example.com/reviewed reviewed: BUSL text is only an example here\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := newChecker(allow)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		path   string
		files  map[string]string
		denied string // substring of the denial; empty: accepted
	}{
		{name: "MIT", files: map[string]string{"LICENSE": mitText}},
		{name: "MIT as LICENSE.txt", files: map[string]string{"LICENSE.txt": mitText}},
		{name: "BUSL", files: map[string]string{"LICENSE": buslText}, denied: "BUSL-1.1"},
		{name: "BUSL next to MIT", files: map[string]string{"LICENSE": mitText, "LICENSE.enterprise": buslText}, denied: "BUSL-1.1 in LICENSE.enterprise"},
		{name: "AGPL", files: map[string]string{"COPYING": agplText}, denied: "AGPL-3.0"},
		{name: "Elastic", files: map[string]string{"LICENSE": elasticText}, denied: "Elastic-2.0"},
		{name: "vendor terms", files: map[string]string{"LICENSE": vendorText}, denied: "unrecognised licence text"},
		{name: "MIT with vendor terms", files: map[string]string{"LICENSE": mitText + vendorText + vendorText}, denied: "recognised licence text (MIT)"},
		{name: "no licence file", files: map[string]string{"README.md": "MIT", "license.go": "package x"}, denied: "no licence file"},
		{name: "documentation licence only", files: map[string]string{"LICENSE.docs": "https://creativecommons.org/licenses/by-sa/4.0/"}, denied: "only a documentation licence"},
		{name: "allow-listed BUSL", path: "example.com/reviewed", files: map[string]string{"LICENSE": buslText}},
		{name: "allow-listed, no file", path: "example.com/reviewed", files: map[string]string{"x.go": "package x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "example.com/m"
			}
			v, err := c.check(module{Path: path, Version: "v1.0.0", Dir: writeModule(t, tt.files)})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.denied == "" && v.denied != "":
				t.Fatalf("denied (%s), want accepted", v.denied)
			case tt.denied != "" && !strings.Contains(v.denied, tt.denied):
				t.Fatalf("denial %q, want one naming %q", v.denied, tt.denied)
			case tt.path != "" && v.allowed == "":
				t.Fatalf("accepted without the allow-list reason")
			}
		})
	}
}

func TestLicenseFiles(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"LICENSE": "", "LICENCE.md": "", "COPYING.LESSER": "", "LICENSE-APACHE": "", "UNLICENSE": "",
		"license.go": "", "LICENSE-3rdparty.csv": "", "README.md": "", "licenses/MIT": "",
	})
	got, err := licenseFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "COPYING.LESSER LICENCE.md LICENSE LICENSE-APACHE UNLICENSE"
	if strings.Join(got, " ") != want {
		t.Fatalf("licence files %q, want %q", got, want)
	}
}

func TestParseAllowList(t *testing.T) {
	list, err := parseAllowList([]byte("# reviewed\n\nexample.com/a  licence in LICENSES/ # why\nexample.com/b@v1.2.0 pinned\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := list.lookup("example.com/a", "v9.0.0"); !ok || r != "licence in LICENSES/" {
		t.Fatalf("example.com/a: %q %v", r, ok)
	}
	if _, ok := list.lookup("example.com/b", "v1.2.0"); !ok {
		t.Fatal("example.com/b@v1.2.0 not listed")
	}
	if _, ok := list.lookup("example.com/b", "v1.3.0"); ok {
		t.Fatal("example.com/b@v1.3.0 listed, only v1.2.0 is")
	}
	if _, err := parseAllowList([]byte("example.com/a\n")); err == nil {
		t.Fatal("entry without a reason accepted")
	}
	if _, err := readAllowList("../licenses.allow"); err != nil {
		t.Fatal(err)
	}
}

// scratch writes a module example.com/scratch whose main package imports
// example.com/busl from files (name -> build line), with ./busl under text.
func scratch(t *testing.T, licence string, importers map[string]string) string {
	t.Helper()
	files := map[string]string{
		"go.mod":       "module example.com/scratch\n\ngo 1.22\n\nrequire example.com/busl v0.0.0\n\nreplace example.com/busl => ./busl\n",
		"main.go":      "package main\n\nfunc main() {}\n",
		"busl/go.mod":  "module example.com/busl\n\ngo 1.22\n",
		"busl/busl.go": "// Package busl is a dependency under test.\npackage busl\n\n// Answer is used by the scratch module.\nconst Answer = 42\n",
		"busl/LICENSE": licence,
	}
	for name, build := range importers {
		files[name] = build + "package main\n\nimport \"example.com/busl\"\n\nvar _ = busl.Answer\n"
	}
	return writeModule(t, files)
}

func TestGate(t *testing.T) {
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOWORK", "off")
	t.Setenv("GOTOOLCHAIN", "local")
	allowFile := filepath.Join(t.TempDir(), "allow")
	if err := os.WriteFile(allowFile, []byte("example.com/busl reviewed for this test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	imported := map[string]string{"dep.go": ""}
	tests := []struct {
		name      string
		licence   string
		importers map[string]string
		args      []string
		code      int
		want      string
	}{
		{name: "BUSL dependency", licence: buslText, importers: imported, code: 1,
			want: "licenses: DENIED example.com/busl => ./busl: not open source: BUSL"},
		{name: "MIT dependency", licence: mitText, importers: imported, code: 0,
			want: "licenses: 1 module checked, all open source"},
		{name: "BUSL dependency allow-listed", licence: buslText, importers: imported,
			args: []string{"-allow", allowFile}, code: 0, want: "1 module checked, all open source"},
		{name: "BUSL imported by a test", licence: buslText, importers: map[string]string{"dep_test.go": ""},
			code: 1, want: "DENIED example.com/busl"},
		{name: "BUSL behind a tag not checked", licence: buslText, importers: map[string]string{"dep.go": "//go:build e2e\n\n"},
			code: 0, want: "0 modules checked"},
		{name: "BUSL behind a tag checked", licence: buslText, importers: map[string]string{"dep.go": "//go:build e2e\n\n"},
			args: []string{"-tags", "e2e"}, code: 1, want: "DENIED example.com/busl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := scratch(t, tt.licence, tt.importers)
			args := append([]string{"-allow", "", "-dir", dir}, tt.args...)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String(), tt.want) {
				t.Fatalf("exit %d, want %d; output %q, want it to contain %q; stderr %q",
					code, tt.code, stdout.String(), tt.want, stderr.String())
			}
		})
	}
}
