package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

// TestDocumentedPluginConfigs decodes every `plugin "containerd"` block of
// the README and docs/ through the plugin's schema and validates it, so
// that an operator who copies one gets a working config.
func TestDocumentedPluginConfigs(t *testing.T) {
	docs, err := filepath.Glob("../docs/*.md")
	must.NoError(t, err)
	found := 0
	for _, f := range append([]string{"../README.md"}, docs...) {
		b, err := os.ReadFile(f)
		must.NoError(t, err)
		for _, body := range documentedPluginConfigs(t, string(b)) {
			found++
			t.Run(filepath.Base(f), func(t *testing.T) {
				_, err := parseConfig(decodePluginHCL(t, body))
				must.NoError(t, err, must.Sprintf("plugin config in %s:\n%s", f, body))
			})
		}
	}
	must.Positive(t, found, must.Sprint("no plugin \"containerd\" block in the README or docs/"))
}

// documentedPluginConfigs returns the bodies of the config blocks of the
// `plugin "containerd"` blocks in a markdown text.
func documentedPluginConfigs(t *testing.T, doc string) []string {
	var out []string
	for rest := doc; ; {
		i := strings.Index(rest, `plugin "containerd" {`)
		if i < 0 {
			return out
		}
		rest = rest[i:]
		j := strings.Index(rest, "config {")
		must.NonNegative(t, j, must.Sprint("plugin block without config"))
		body, end := braced(rest[j+len("config {"):])
		must.NonNegative(t, end, must.Sprint("unbalanced braces in a plugin block"))
		out = append(out, body)
		rest = rest[j+len("config {")+end:]
	}
}

// braced returns s up to the brace closing an already open one, and where
// that brace is (-1 if none closes it).
func braced(s string) (string, int) {
	depth := 1
	for i, r := range s {
		switch r {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return s[:i], i
			}
		}
	}
	return "", -1
}
