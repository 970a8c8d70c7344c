package preflight

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

// Usage is the check command's one-line synopsis.
const Usage = "nomad-driver-containerd check [-config <agent config file or dir>] [-json]"

// Main runs the check command with args (after "check"), prints one line
// per check (or the report as JSON) to stdout and returns the exit code:
// 0 when nothing failed, 1 when a check failed, 2 for bad arguments.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n\nChecks this node for the driver and validates its plugin block.\n\n", Usage)
		fs.PrintDefaults()
	}
	path := fs.String("config", "", "the Nomad agent's config file or directory (its plugin \"containerd\" block is checked)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "check: unexpected argument %q\nusage: %s\n", fs.Arg(0), Usage)
		return 2
	}
	rep := Run(ctx, Options{ConfigPath: *path})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		WriteText(stdout, rep)
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// marks are the line prefixes per status.
var marks = map[Status]string{Pass: "✓", Warn: "!", Fail: "✗"}

// WriteText prints one line per check: mark, name, what was found and, for
// a warning or failure, how to fix it.
func WriteText(w io.Writer, rep Report) {
	for _, c := range rep.Checks {
		line := fmt.Sprintf("%s %s: %s", marks[c.Status], c.Name, c.Detail)
		if c.Fix != "" {
			line += " (fix: " + c.Fix + ")"
		}
		fmt.Fprintln(w, line)
	}
}
