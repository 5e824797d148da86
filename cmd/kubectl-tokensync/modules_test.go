package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSharedModulesMatchTheOperators: every module the plugin builds that
// the operator's go.mod also requires is at the operator's version, so that
// the Kubernetes packages compiled for the operator are reused here and the
// plugin adds to a cold make test only what the operator lacks (cobra,
// k8s.io/cli-runtime and its kustomize). When the plugin needs a newer
// version, raise it in the root module: go get <module>@<version>.
func TestSharedModulesMatchTheOperators(t *testing.T) {
	versions := func(dir string, args ...string) map[string]string {
		cmd := exec.Command("go", append([]string{"list", "-m"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -m %v in %s: %v", args, dir, err)
		}
		v := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); len(f) >= 2 {
				v[f[0]] = f[1]
			}
		}
		return v
	}
	operator := versions(filepath.Join("..", ".."), "all")
	cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}", "./...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || seen[f[0]] {
			continue // the operator itself (replaced by ../..), or a module already checked
		}
		seen[f[0]] = true
		if want, ok := operator[f[0]]; ok && want != f[1] {
			t.Errorf("%s is at %s here and %s in the operator's go.mod: run go get %s@%s in the repository's root", f[0], f[1], want, f[0], f[1])
		}
	}
}
