package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// allowList holds reviewed exceptions: modules accepted although the check
// cannot confirm their licence from the files at their root. An entry names
// a module path, or path@version to accept one version only, and a reason.
type allowList map[string]string

// readAllowList reads an allow-list file; an empty name means no exceptions.
func readAllowList(name string) (allowList, error) {
	if name == "" {
		return allowList{}, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("failed to read allow list: %w", err)
	}
	list, err := parseAllowList(data)
	if err != nil {
		return nil, fmt.Errorf("failed to parse allow list %s: %w", name, err)
	}
	return list, nil
}

// parseAllowList parses lines of `module[@version] reason`; # starts a
// comment. Every entry needs a reason.
func parseAllowList(data []byte) (allowList, error) {
	list := allowList{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case len(fields) == 1:
			return nil, fmt.Errorf("line %d: %s has no reason", n, fields[0])
		}
		if _, dup := list[fields[0]]; dup {
			return nil, fmt.Errorf("line %d: %s is listed twice", n, fields[0])
		}
		list[fields[0]] = strings.Join(fields[1:], " ")
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return list, nil
}

// lookup returns the reason a module is accepted, if it is listed.
func (a allowList) lookup(path, version string) (string, bool) {
	if reason, ok := a[path+"@"+version]; ok {
		return reason, true
	}
	reason, ok := a[path]
	return reason, ok
}
