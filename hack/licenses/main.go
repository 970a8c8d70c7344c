// Command licenses is the licence gate: it fails when a module compiled into
// the plugin, its tests or the test bed's tools is not open source.
//
//	go run ./hack/licenses [-v] [-allow file] [-dir dir] [-tags tags]... [packages]
//	go run ./hack/licenses [-v] [-allow file] -tools hack/versions.env
//	go run ./hack/licenses [-v] [-allow file] -tool module@version [-tags tags] [packages]
//
// The first form checks a module (default: the one in the current
// directory): the packages named (default ./...), their tests and
// everything they import, once without build tags and once per -tags. The
// second checks every tool hack/deps.sh builds at the versions pinned in
// hack/versions.env; the third one module's packages (default ./...) at a
// version. Each module's licence files at its root are classified with
// licensecheck; a module is accepted when every licence found is an open
// source one (see allowedIDs) or when hack/licenses.allow lists it.
//
// Exit status: 0 when everything is open source, 1 when a module is denied,
// 2 when the check could not run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// tagSets collects repeated -tags flags.
type tagSets []string

func (t *tagSets) String() string     { return strings.Join(*t, " ") }
func (t *tagSets) Set(s string) error { *t = append(*t, s); return nil }

// errDenied reports that the check ran and found modules that are not open
// source; they have been printed.
var errDenied = errors.New("modules denied")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("licenses", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "print every module with its licences")
	allowFile := fs.String("allow", "hack/licenses.allow", "allow-list of reviewed exceptions (empty: none)")
	dir := fs.String("dir", ".", "module directory; with -tools, the repository root")
	toolsFile := fs.String("tools", "", "check the tools hack/deps.sh builds, at the versions in this file")
	toolArg := fs.String("tool", "", "check one tool module, as module@version")
	var tags tagSets
	fs.Var(&tags, "tags", "also check the build with these build tags (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pkgs := fs.Args()
	if len(pkgs) == 0 {
		pkgs = []string{"./..."}
	}
	allow, err := readAllowList(*allowFile)
	if err == nil {
		var c *checker
		if c, err = newChecker(allow); err == nil {
			r := reporter{checker: c, out: stdout, verbose: *verbose}
			switch {
			case *toolsFile != "":
				err = r.tools(ctx, *toolsFile, *dir)
			case *toolArg != "":
				err = r.tool(ctx, *toolArg, tags, pkgs)
			default:
				err = r.module(ctx, *dir, tags, pkgs)
			}
		}
	}
	switch {
	case errors.Is(err, errDenied):
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "licenses: %v\n", err)
		return 2
	}
	return 0
}

// reporter runs checks and prints their results.
type reporter struct {
	checker *checker
	out     io.Writer
	verbose bool
}

// module checks a module's own build: no tags, then each tag set, with tests.
func (r reporter) module(ctx context.Context, dir string, tags []string, pkgs []string) error {
	ls := []listing{{dir: dir, flags: []string{"-test"}, pkgs: pkgs}}
	for _, t := range tags {
		ls = append(ls, listing{dir: dir, flags: []string{"-test", "-tags", t}, pkgs: pkgs})
	}
	mods, err := listAll(ctx, ls)
	if err != nil {
		return err
	}
	return r.report("", mods)
}

// tools checks every tool of the test bed.
func (r reporter) tools(ctx context.Context, versionsFile, root string) error {
	versions, err := readVersions(versionsFile)
	if err != nil {
		return err
	}
	denied := false
	for _, t := range testBed {
		version := versions[t.versionVar]
		if version == "" {
			return fmt.Errorf("failed to find %s in %s", t.versionVar, versionsFile)
		}
		mods, err := toolModules(ctx, t, version, root)
		if err != nil {
			return err
		}
		err = r.report(t.name+" "+version+": ", mods)
		if errors.Is(err, errDenied) {
			denied = true
		} else if err != nil {
			return err
		}
	}
	if denied {
		return errDenied
	}
	return nil
}

// tool checks one module at a version.
func (r reporter) tool(ctx context.Context, modVersion string, tags []string, pkgs []string) error {
	path, version, ok := strings.Cut(modVersion, "@")
	if !ok || path == "" || version == "" {
		return fmt.Errorf("failed to parse -tool %q: want module@version", modVersion)
	}
	t := tool{name: path, module: path, pkgs: pkgs, tags: strings.Join(tags, ","), cgo: true}
	mods, err := toolModules(ctx, t, version, ".")
	if err != nil {
		return err
	}
	return r.report(modVersion+": ", mods)
}

// report classifies modules and prints one line per denied module (every
// module with -v) and a summary.
func (r reporter) report(prefix string, mods []module) error {
	denied := 0
	for _, m := range mods {
		v, err := r.checker.check(m)
		if err != nil {
			return fmt.Errorf("failed to check %s: %w", m.label(), err)
		}
		switch {
		case v.denied != "":
			denied++
			fmt.Fprintf(r.out, "licenses: %sDENIED %s: %s\n", prefix, m.label(), v.denied)
		case r.verbose && v.allowed != "":
			fmt.Fprintf(r.out, "  %s: allow-listed: %s (%s)\n", m.label(), v.allowed, strings.Join(v.licenses, ", "))
		case r.verbose:
			fmt.Fprintf(r.out, "  %s: %s (%s)\n", m.label(), strings.Join(v.licenses, ", "), strings.Join(v.files, ", "))
		}
	}
	if denied > 0 {
		fmt.Fprintf(r.out, "licenses: %s%d of %s not open source\n", prefix, denied, modules(len(mods)))
		return errDenied
	}
	fmt.Fprintf(r.out, "licenses: %s%s checked, all open source\n", prefix, modules(len(mods)))
	return nil
}

func modules(n int) string {
	if n == 1 {
		return "1 module"
	}
	return fmt.Sprintf("%d modules", n)
}
