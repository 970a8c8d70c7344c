package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/google/licensecheck"
)

// allowedIDs are the licensecheck IDs of the open source licences a module
// may use: permissive ones, public-domain dedications and weak (file or
// library) copyleft. Everything else is denied: strong copyleft (GPL),
// network copyleft (AGPL, SSPL), source-available terms (BUSL, Elastic,
// Commons Clause, PolyForm, non-commercial Creative Commons) and any text
// licensecheck does not recognise.
var allowedIDs = map[string]bool{
	"0BSD": true, "CC0-1.0": true, "Unlicense": true, "MIT-0": true,
	"MIT": true, "MIT-CMU": true, "X11": true, "ISC": true,
	"BSD-1-Clause": true, "BSD-2-Clause": true, "BSD-2-Clause-Patent": true,
	"BSD-2-Clause-Views": true, "BSD-3-Clause": true, "BSD-3-Clause-Clear": true,
	"BSD-3-Clause-LBNL": true, "BSD-Source-Code": true,
	"Apache-2.0": true, "Zlib": true, "BSL-1.0": true, "NCSA": true,
	"Python-2.0": true, "PSF-2.0": true, "PostgreSQL": true, "UPL-1.0": true,
	"BlueOak-1.0.0": true, "Unicode-DFS-2015": true, "Unicode-DFS-2016": true,
	"MPL-2.0": true, "MPL-2.0-no-copyleft-exception": true,
	"LGPL-2.0": true, "LGPL-2.0-only": true, "LGPL-2.0-or-later": true,
	"LGPL-2.1": true, "LGPL-2.1-only": true, "LGPL-2.1-or-later": true,
	"LGPL-3.0": true, "LGPL-3.0-only": true, "LGPL-3.0-or-later": true,
	"EPL-1.0": true, "EPL-2.0": true, "CDDL-1.0": true, "CDDL-1.1": true,
}

// docsIDs are also accepted in a licence file for documentation only
// (LICENSE.docs, as OCI and Docker projects ship next to their code licence):
// it covers no compiled code.
var docsIDs = map[string]bool{"CC-BY-4.0": true, "CC-BY-SA-4.0": true}

// extraLicenses are recognised on top of licensecheck's built-in set so that
// a denial names them: licensecheck knows SSPL, AGPL and Commons Clause but
// not the Business Source or Elastic licences. The short patterns catch
// other versions and variants of the same terms.
var extraLicenses = []licensecheck.License{
	{ID: "BUSL-1.1", LRE: buslLRE},
	{ID: "BUSL", LRE: "Business Source License"},
	{ID: "Elastic-2.0", LRE: elasticLRE},
	{ID: "Elastic", LRE: "Elastic License Agreement"},
}

const buslLRE = `
((
Business Source License 1.1
))??
((
Terms
))??
The Licensor hereby grants you the right to copy, modify, create derivative
works, redistribute, and make non-production use of the Licensed Work. The
Licensor may make an Additional Use Grant, above, permitting limited
production use.
`

const elasticLRE = `
You may not provide the software to third parties as a hosted or managed
service, where the service provides users with access to any substantial set
of the features or functionality of the software.
`

// minCoverage is the share (percent) of a licence file's words that must be
// recognised licence text: below it the file carries terms licensecheck does
// not know (a vendor's own terms, extra restrictions) and is denied.
const minCoverage = 80

// licenseFileRE matches the names of licence files at a module's root:
// LICENSE, LICENCE, COPYING and UNLICENSE, alone or with a suffix
// (LICENSE.txt, LICENSE-MIT, LICENSE.APACHE, COPYING.LESSER, ...).
var licenseFileRE = regexp.MustCompile(`(?i)^(un)?(licen[cs]e|copying)([-._][-._a-z0-9]*)?$`)

// sourceExts are suffixes that make a licence-like name a program or data
// file (license.go, LICENSE-3rdparty.csv) rather than a licence text.
var sourceExts = map[string]bool{
	".go": true, ".s": true, ".c": true, ".h": true, ".sh": true, ".py": true,
	".js": true, ".json": true, ".yaml": true, ".yml": true, ".toml": true,
	".csv": true, ".html": true, ".tmpl": true, ".tpl": true,
}

// checker classifies modules by the licence files at their root.
type checker struct {
	scanner *licensecheck.Scanner
	allow   allowList
}

// newScanner builds the scanner once: compiling licensecheck's patterns
// takes a while.
var newScanner = sync.OnceValues(func() (*licensecheck.Scanner, error) {
	return licensecheck.NewScanner(append(licensecheck.BuiltinLicenses(), extraLicenses...))
})

func newChecker(allow allowList) (*checker, error) {
	s, err := newScanner()
	if err != nil {
		return nil, fmt.Errorf("failed to build licence scanner: %w", err)
	}
	return &checker{scanner: s, allow: allow}, nil
}

// verdict is what the check found for one module.
type verdict struct {
	mod      module
	licenses []string // licence IDs found, sorted
	files    []string // licence files at the module root
	denied   string   // why the module is not accepted; empty when it is
	allowed  string   // the allow-list reason when the module is an exception
}

// check classifies one module.
func (c *checker) check(m module) (verdict, error) {
	v := verdict{mod: m}
	files, err := licenseFiles(m.Dir)
	if err != nil {
		return v, err
	}
	v.files = files
	var problems []string
	ids := map[string]bool{}
	code := false // whether a licence file covers the code
	for _, name := range files {
		text, err := os.ReadFile(filepath.Join(m.Dir, name))
		if err != nil {
			return v, fmt.Errorf("failed to read licence file: %w", err)
		}
		docs := strings.EqualFold(filepath.Ext(name), ".docs")
		code = code || !docs
		found, problem := c.classify(text, docs)
		for _, id := range found {
			ids[id] = true
		}
		if problem != "" {
			problems = append(problems, fmt.Sprintf("%s in %s", problem, name))
		}
	}
	for id := range ids {
		v.licenses = append(v.licenses, id)
	}
	sort.Strings(v.licenses)
	switch {
	case len(files) == 0:
		problems = append(problems, "no licence file at the module root")
	case !code:
		problems = append(problems, "only a documentation licence at the module root")
	}
	if len(problems) > 0 {
		v.denied = strings.Join(problems, "; ")
		if reason, ok := c.allow.lookup(m.Path, m.builtVersion()); ok {
			v.denied, v.allowed = "", reason
		}
	}
	return v, nil
}

// classify scans one licence text, of the documentation only when docs is
// set. It returns the licence IDs found and, when the text is not
// acceptable, what is wrong with it.
func (c *checker) classify(text []byte, docs bool) ([]string, string) {
	cov := c.scanner.Scan(text)
	var ids, denied []string
	seen := map[string]bool{}
	for _, m := range cov.Match {
		if seen[m.ID] {
			continue
		}
		seen[m.ID] = true
		ids = append(ids, m.ID)
		if !allowedIDs[m.ID] && !(docs && docsIDs[m.ID]) {
			denied = append(denied, m.ID)
		}
	}
	switch {
	case len(denied) > 0:
		return ids, "not open source: " + strings.Join(denied, ", ")
	case len(ids) == 0:
		return ids, "unrecognised licence text"
	case cov.Percent < minCoverage:
		return ids, fmt.Sprintf("only %.0f%% recognised licence text (%s)", cov.Percent, strings.Join(ids, ", "))
	}
	return ids, ""
}

// licenseFiles lists the licence files at the root of dir.
func licenseFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to read module directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !licenseFileRE.MatchString(name) {
			continue
		}
		if sourceExts[strings.ToLower(filepath.Ext(name))] {
			continue
		}
		names = append(names, name)
	}
	return names, nil
}
