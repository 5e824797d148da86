package chart

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSharedModulesMatchTheOperators: every module this module builds that
// the operator's build and tests also build is at the operator's version.
// Then the Kubernetes packages compiled for make vet, the benchmark and the
// operator (without -race) are reused here, and a cold make test compiles
// only Helm and Prometheus for these tests (about 430 packages fewer, 5
// minutes of a 2-core machine). A module the operator only has in its
// module graph, and never compiles, saves nothing and is not compared
// (Prometheus's evaluation brings cloud SDKs the operator never builds).
// When Helm or Prometheus needs a newer version of a module both build,
// raise it in the root module: go get <module>@<version>.
func TestSharedModulesMatchTheOperators(t *testing.T) {
	operator := builtModules(t, repoFile())
	for path, version := range builtModules(t, ".") {
		if want, ok := operator[path]; ok && want != version {
			t.Errorf("%s is at %s here and %s in the operator's go.mod: run go get %s@%s in the repository's root", path, version, want, path, version)
		}
	}
}

// builtModules maps each module whose packages the module in dir builds
// (with its tests), but the main module and the operator, to its version.
func builtModules(t *testing.T, dir string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{with .Module}}{{if not .Main}}{{if not .Replace}}{{.Path}} {{.Version}}{{end}}{{end}}{{end}}", "./...")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps -test ./... in %s: %v", dir, err)
	}
	modules := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			modules[f[0]] = f[1]
		}
	}
	return modules
}
