package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeImageReference: the reference make image tags and make deploy
// deploys (the Makefile's IMAGE), in a repository of its own: IMG as given
// when it names a tag; otherwise IMG with the chart's appVersion and the
// short commit, and -dirty once a tracked file changes or a new file
// appears; the appVersion alone outside a git repository.
func TestMakeImageReference(t *testing.T) {
	makefile, err := filepath.Abs(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		path = filepath.Join(repo, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing of the caller's make or git may leak in: a make test IMG=...
	// passes IMG down through MAKEFLAGS, a git hook sets GIT_DIR.
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(key, "GIT_"), strings.HasPrefix(key, "MAKE"), key == "MFLAGS",
			key == "IMG", key == "IMAGE_TAG", key == "VERSION":
		default:
			env = append(env, kv)
		}
	}
	// And git looks for no repository above this one.
	env = append(env, "GIT_CEILING_DIRECTORIES="+filepath.Dir(repo))
	cmd := func(name string, args ...string) string {
		t.Helper()
		c := exec.Command(name, args...)
		c.Dir = repo
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	image := func(vars ...string) string {
		t.Helper()
		args := append([]string{"-s", "-f", makefile, "--eval", "print-image: ; @echo $(IMAGE)"}, vars...)
		return cmd("make", append(args, "print-image")...)
	}

	write("charts/tokensync/Chart.yaml", "apiVersion: v2\nname: tokensync\nversion: 1.2.3\nappVersion: \"v1.2.3\"\n")
	write("main.go", "package main\n")
	if got := image(); got != "tokensync:v1.2.3" {
		t.Errorf("outside a git repository: %q, want tokensync:v1.2.3", got)
	}

	git := func(args ...string) string {
		t.Helper()
		return cmd("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "first")
	commit := git("rev-parse", "--short", "HEAD")

	for _, tc := range []struct{ img, want string }{
		{"", "tokensync:v1.2.3-" + commit},
		{"registry.example.com/tokensync", "registry.example.com/tokensync:v1.2.3-" + commit},
		{"registry.example.com:5000/team/tokensync", "registry.example.com:5000/team/tokensync:v1.2.3-" + commit},
		{"registry.example.com:5000/tokensync:mine", "registry.example.com:5000/tokensync:mine"},
		{"tokensync:v1.2.3", "tokensync:v1.2.3"},
	} {
		var vars []string
		if tc.img != "" {
			vars = append(vars, "IMG="+tc.img)
		}
		if got := image(vars...); got != tc.want {
			t.Errorf("IMG=%q on a clean tree: %q, want %q", tc.img, got, tc.want)
		}
	}

	write("main.go", "package main\n\nfunc main() {}\n")
	if got, want := image(), "tokensync:v1.2.3-"+commit+"-dirty"; got != want {
		t.Errorf("a tracked file changed: %q, want %q", got, want)
	}
	if got, want := image("IMG=registry.example.com/tokensync:mine"), "registry.example.com/tokensync:mine"; got != want {
		t.Errorf("IMG with a tag, on a dirty tree: %q, want %q", got, want)
	}
	git("commit", "-q", "-a", "-m", "second")
	commit = git("rev-parse", "--short", "HEAD")
	if got, want := image(), "tokensync:v1.2.3-"+commit; got != want {
		t.Errorf("committed: %q, want %q", got, want)
	}
	write("extra.go", "package main\n")
	if got, want := image(), "tokensync:v1.2.3-"+commit+"-dirty"; got != want {
		t.Errorf("a new file: %q, want %q", got, want)
	}
	write(".gitignore", "extra.go\n")
	git("add", ".gitignore")
	git("commit", "-q", "-m", "ignore")
	commit = git("rev-parse", "--short", "HEAD")
	if got, want := image(), "tokensync:v1.2.3-"+commit; got != want {
		t.Errorf("only an ignored file: %q, want %q", got, want)
	}
}
