package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestExampleJobsRunByE2E checks that every job in example-jobs/ is run by
// an e2e test: its file name appears as a string literal in e2e/.
func TestExampleJobsRunByE2E(t *testing.T) {
	jobs, err := filepath.Glob(filepath.Join("example-jobs", "*.nomad.hcl"))
	if err != nil || len(jobs) == 0 {
		t.Fatalf("no example jobs found (%v)", err)
	}
	tests, err := filepath.Glob(filepath.Join("e2e", "*_test.go"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no e2e tests found (%v)", err)
	}
	var src strings.Builder
	for _, f := range tests {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for _, j := range jobs {
		if name := filepath.Base(j); !strings.Contains(src.String(), strconv.Quote(name)) {
			t.Errorf("example job %s is run by no e2e test (no %q in e2e/*_test.go)", j, name)
		}
	}
}
