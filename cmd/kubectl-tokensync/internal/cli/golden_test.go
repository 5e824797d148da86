package cli

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// go test -run ... -update writes the golden files anew; review the diff.
var update = flag.Bool("update", false, "write testdata/*.golden from the output")

// golden compares got with testdata/name.golden.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -run %s -update rewrites it):\n--- got\n%s--- want\n%s", path, t.Name(), got, want)
	}
}

// What normalise replaces in the output of a run against the operator,
// whose times and addresses change from run to run.
var (
	rfc3339Time  = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	durationText = regexp.MustCompile(`\b(in )?\d+[smhdy](\d+[smhdy])?( ago)?\b|\bnow\b`)
	loopbackURL  = regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	spaceRun     = regexp.MustCompile(`[ \t]+`)
)

// normalise makes a run's output comparable with a golden file: times
// become TIME, durations from now WHEN, the fake providers' address
// http://FAKE, and since a column is as wide as its widest value, each run
// of blanks one space.
func normalise(s string) string {
	s = rfc3339Time.ReplaceAllString(s, "TIME")
	s = loopbackURL.ReplaceAllString(s, "http://FAKE")
	s = durationText.ReplaceAllString(s, "WHEN")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(spaceRun.ReplaceAllString(l, " "), " ")
	}
	return strings.Join(lines, "\n")
}
