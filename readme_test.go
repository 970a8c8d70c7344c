package main

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/nomad-containerd/nomad-driver-containerd/driver"
)

// TestReadmeOptionTables checks that every option of the plugin and task
// schemas has a row in README.md's tables, and every row names a real
// option. Options of a single block are written block.option; a block
// list (trust.rule) or a task block (mount, auth) is one row.
func TestReadmeOptionTables(t *testing.T) {
	d := driver.New(hclog.NewNullLogger())
	plugin, err := d.ConfigSchema()
	if err != nil {
		t.Fatal(err)
	}
	task, err := d.TaskConfigSchema()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		section string
		spec    *hclspec.Spec
		nested  bool // list a single block's options as block.option
	}{
		{section: "## Plugin options", spec: plugin, nested: true},
		{section: "## Task options", spec: task},
	} {
		want := schemaNames(c.spec, "", c.nested)
		got := tableNames(t, string(readme), c.section)
		for _, n := range sortedDiff(want, got) {
			t.Errorf("%s: option %q is in the schema but not in the README table", c.section, n)
		}
		for _, n := range sortedDiff(got, want) {
			t.Errorf("%s: README row %q is not an option of the schema", c.section, n)
		}
	}
}

// schemaNames lists an object spec's option names.
func schemaNames(s *hclspec.Spec, prefix string, nested bool) map[string]bool {
	out := map[string]bool{}
	for name, v := range s.GetObject().GetAttributes() {
		if dv := v.GetDefault(); dv != nil {
			v = dv.GetPrimary()
		}
		if b := v.GetBlockValue(); b != nil && nested && b.GetNested().GetObject() != nil {
			for n := range schemaNames(b.GetNested(), prefix+name+".", nested) {
				out[n] = true
			}
			continue
		}
		out[prefix+name] = true
	}
	return out
}

var (
	rowRe  = regexp.MustCompile("^\\| ([^|]+) \\|")
	nameRe = regexp.MustCompile("`([a-z_.]+)`")
)

// tableNames collects the backquoted names in the first column of the
// table under heading.
func tableNames(t *testing.T, readme, heading string) map[string]bool {
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q section", heading)
	}
	body := readme[i+len(heading)+2:]
	if j := strings.Index(body, "\n## "); j >= 0 {
		body = body[:j]
	}
	out := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		m := rowRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, n := range nameRe.FindAllStringSubmatch(m[1], -1) {
			out[n[1]] = true
		}
	}
	if len(out) == 0 {
		t.Fatalf("README.md section %q has no option table", heading)
	}
	return out
}

func sortedDiff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
