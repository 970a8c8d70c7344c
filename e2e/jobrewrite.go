package e2e

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// pluginName is the driver name jobs give this plugin's tasks.
const pluginName = "containerd"

// setTaskOption adds the line `name = "value"` at the end of the config
// block of every task of the job file src (named filename in errors) whose
// driver is this plugin, indented as one level below the block's closing
// brace, and leaves every other byte as it is (hclwrite would align the
// block's other attributes): a config that sets the option already keeps
// its line when the value is the same and is an error when it differs. It
// fails when src has no such task.
func setTaskOption(src []byte, filename, name, value string) ([]byte, error) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("failed to parse %s: %s", filename, diags.Error())
	}
	var at []hcl.Range // closing braces of the config blocks to add to
	tasks := 0
	for _, job := range blocksOf(f.Body.(*hclsyntax.Body), "job") {
		for _, group := range blocksOf(job.Body, "group") {
			for _, task := range blocksOf(group.Body, "task") {
				if stringAttr(task.Body, "driver") != pluginName {
					continue
				}
				tasks++
				configs := blocksOf(task.Body, "config")
				if len(configs) != 1 {
					return nil, fmt.Errorf("task %q of %s: %d config blocks, want 1", label(task), filename, len(configs))
				}
				if _, ok := configs[0].Body.Attributes[name]; ok {
					if have := stringAttr(configs[0].Body, name); have != value {
						return nil, fmt.Errorf("task %q of %s: %s is %q already, not %q", label(task), filename, name, have, value)
					}
					continue
				}
				at = append(at, configs[0].CloseBraceRange)
			}
		}
	}
	if tasks == 0 {
		return nil, fmt.Errorf("%s has no task with driver = %q", filename, pluginName)
	}
	out := append([]byte(nil), src...)
	for i := len(at) - 1; i >= 0; i-- { // from the end: earlier offsets stay right
		out = insertLine(out, at[i], fmt.Sprintf("%s = %q", name, value))
	}
	return out, nil
}

// insertLine puts line on a line of its own before the closing brace at
// brace, one indentation level (two spaces) deeper than the brace.
func insertLine(src []byte, brace hcl.Range, line string) []byte {
	lineStart := brace.Start.Byte - (brace.Start.Column - 1)
	indent := string(src[lineStart:brace.Start.Byte])
	add := indent + "  " + line + "\n"
	if strings.TrimSpace(indent) != "" { // `config {}`: the brace follows other text
		indent = strings.Repeat(" ", len(indent)-len(strings.TrimLeft(indent, " ")))
		add = "\n" + indent + "  " + line + "\n" + indent
		lineStart = brace.Start.Byte
	}
	return append(src[:lineStart:lineStart], append([]byte(add), src[lineStart:]...)...)
}

// blocksOf are body's blocks of one type, in file order.
func blocksOf(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// stringAttr is the value of a constant string attribute of body; "" when
// it is missing or not a constant string.
func stringAttr(body *hclsyntax.Body, name string) string {
	a, ok := body.Attributes[name]
	if !ok {
		return ""
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() || !v.Type().Equals(cty.String) || v.IsNull() {
		return ""
	}
	return v.AsString()
}

// label is a block's first label ("" without one).
func label(b *hclsyntax.Block) string {
	if len(b.Labels) > 0 {
		return b.Labels[0]
	}
	return ""
}

// usernsJobFiles are the example jobs that e2e runs once more with
// userns_mode = "auto" added to their tasks' config blocks, and nothing
// else changed. binds.nomad.hcl's host directory is bound as it is, so it
// keeps the host's ownership: the task's root, an unprivileged host ID,
// writes there only if others may (the protection the mode is for);
// userns-binds.nomad.hcl binds a directory idmapped instead.
var usernsJobFiles = []string{
	"service.nomad.hcl",
	"bridge-ports.nomad.hcl",
	"group-bridge.nomad.hcl",
	"verified.nomad.hcl",
	"binds.nomad.hcl",
}
