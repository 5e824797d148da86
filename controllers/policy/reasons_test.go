package policy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// conditionReasons are the reasons the API declares that are no failure:
// a condition's reason or a successful attempt's result.
var conditionReasons = map[string]bool{
	tokensyncv1alpha1.ReasonTokenIssued: true, tokensyncv1alpha1.ReasonSucceeded: true,
	tokensyncv1alpha1.ReasonRetrying: true, tokensyncv1alpha1.ReasonSuspended: true,
}

// TestFailureRules: every reason the API declares (api/v1alpha1, each
// constant named Reason... or Result...) is a failure with its row in the
// table or a condition's reason; every error kind the providers package
// declares is a row; every row is described in the README's "Conditions and
// what to do"; and each row is as that section describes it.
func TestFailureRules(t *testing.T) {
	declared := stringConstants(t, filepath.Join("..", "..", "api", "v1alpha1"), func(name, _ string) bool {
		return strings.HasPrefix(name, "Reason") || strings.HasPrefix(name, "Result")
	})
	if len(declared) < 10 {
		t.Fatalf("found %d reasons in api/v1alpha1: the test reads the wrong files", len(declared))
	}
	for name, value := range declared {
		_, row := Rules[value]
		if row == conditionReasons[value] {
			t.Errorf("%s (%q): a failure reason needs its row in Rules; a condition's reason none (row %v)", name, value, row)
		}
	}
	kinds := stringConstants(t, filepath.Join("..", "..", "providers"), func(_, typ string) bool { return typ == "ErrorKind" })
	if len(kinds) < 5 {
		t.Fatalf("found %d error kinds in providers", len(kinds))
	}
	for name, value := range kinds {
		if _, ok := Rules[value]; !ok {
			t.Errorf("providers.%s (%q) has no row", name, value)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	if i := strings.Index(section, "## Conditions and what to do"); i >= 0 {
		section = section[i:]
		if j := strings.Index(section[3:], "\n## "); j >= 0 {
			section = section[:j+3]
		}
	} else {
		t.Fatal(`README has no "Conditions and what to do" section`)
	}
	for reason := range Rules {
		if !strings.Contains(section, "`"+reason+"`") {
			t.Errorf("%s has a row but no mention in README's Conditions and what to do", reason)
		}
	}

	const fast, slow = RetryFast, RetrySlow
	want := map[string]struct {
		class                          RetryClass
		stalls, stops, lockouts, lifts bool
	}{
		tokensyncv1alpha1.ReasonProviderUnavailable:      {fast, false, false, false, false},
		tokensyncv1alpha1.ReasonInvalidResponse:          {fast, false, false, false, false},
		tokensyncv1alpha1.ReasonCredentialsNotFound:      {fast, false, false, false, false},
		tokensyncv1alpha1.ReasonSecretWriteFailed:        {fast, false, false, false, false},
		tokensyncv1alpha1.ResultSecretTooLarge:           {slow, true, true, false, true},
		tokensyncv1alpha1.ReasonAuthenticationFailed:     {slow, true, false, true, false},
		tokensyncv1alpha1.ReasonRequestBlocked:           {slow, false, false, false, false},
		tokensyncv1alpha1.ReasonInvalidCredentials:       {slow, true, false, false, false},
		tokensyncv1alpha1.ReasonCredentialsNotAllowed:    {slow, true, true, false, true},
		tokensyncv1alpha1.ReasonInvalidTemplate:          {slow, true, true, false, true},
		tokensyncv1alpha1.ReasonSecretConflict:           {fast, true, true, false, true},
		tokensyncv1alpha1.ReasonEndpointNotAllowed:       {fast, true, true, false, true},
		tokensyncv1alpha1.ReasonUnsupportedProvider:      {slow, true, true, false, false},
		tokensyncv1alpha1.ReasonInvalidNamespaceSelector: {slow, true, true, false, true},
	}
	for reason, r := range Rules {
		w, ok := want[reason]
		if !ok {
			t.Errorf("%s: a row with no expectation here", reason)
			continue
		}
		if r.Class != w.class || r.Stalls != w.stalls || r.StopsUntilChange != w.stops || r.CountsTowardLockout != w.lockouts || (r.LiftedBy != nil) != w.lifts {
			t.Errorf("%s: class %v stalls %v stops %v lockout %v lifted-by %v; want %+v", reason, r.Class, r.Stalls, r.StopsUntilChange, r.CountsTowardLockout, r.LiftedBy != nil, w)
		}
		if r.LiftedBy != nil && !r.StopsUntilChange {
			t.Errorf("%s: LiftedBy on a row that does not stop", reason)
		}
		// Only a refusal that kept the credentials from being judged
		// leaves the count of consecutive rejections as it was.
		if want := reason == tokensyncv1alpha1.ReasonRequestBlocked; r.KeepsLockoutCount != want {
			t.Errorf("%s: KeepsLockoutCount %v, want %v", reason, r.KeepsLockoutCount, want)
		}
	}
	// Only the reasons no login request precedes are no login for the
	// minimum login interval (InvalidCredentials and InvalidTemplate may
	// come from the provider's answer or the token's write, so they count).
	sendNothing := map[string]bool{tokensyncv1alpha1.ReasonCredentialsNotFound: true, tokensyncv1alpha1.ReasonCredentialsNotAllowed: true,
		tokensyncv1alpha1.ReasonSecretConflict: true, tokensyncv1alpha1.ReasonEndpointNotAllowed: true, tokensyncv1alpha1.ReasonUnsupportedProvider: true,
		tokensyncv1alpha1.ReasonInvalidNamespaceSelector: true}
	for reason, r := range Rules {
		if r.SendsNothing != sendNothing[reason] {
			t.Errorf("%s: SendsNothing %v, want %v", reason, r.SendsNothing, sendNothing[reason])
		}
	}
	// A reason the table does not know is retried fast and stalls nothing.
	if r := RuleOf("SomethingNew"); r.Class != RetryFast || r.Stalls || r.StopsUntilChange || r.LiftedBy != nil {
		t.Errorf("unknown reason: %+v", r)
	}
}

// stringConstants are the string constants declared in the Go files of dir
// (not its tests) that keep passes (by name and declared type), by name.
func stringConstants(t *testing.T, dir string, keep func(name, typ string) bool) map[string]string {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					typ := ""
					if id, ok := vs.Type.(*ast.Ident); ok {
						typ = id.Name
					}
					for i, name := range vs.Names {
						if i >= len(vs.Values) {
							continue
						}
						lit, ok := vs.Values[i].(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING || !keep(name.Name, typ) {
							continue
						}
						v, err := strconv.Unquote(lit.Value)
						if err != nil {
							t.Fatal(err)
						}
						out[name.Name] = v
					}
				}
			}
		}
	}
	return out
}

// TestPolicyIsPure: the policy imports no client and no controller-runtime:
// only the standard library, apimachinery's types, the API and providers.
func TestPolicyIsPure(t *testing.T) {
	fs := token.NewFileSet()
	pkgs, err := parser.ParseDir(fs, ".", func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"k8s.io/apimachinery/pkg/apis/", "k8s.io/apimachinery/pkg/api/meta", "k8s.io/apimachinery/pkg/types",
		"github.com/tokensync/tokensync/api/", "github.com/tokensync/tokensync/providers"}
	for _, pkg := range pkgs {
		for name, f := range pkg.Files {
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				std := !strings.Contains(strings.SplitN(path, "/", 2)[0], ".")
				ok := std
				for _, a := range allowed {
					ok = ok || strings.HasPrefix(path, a)
				}
				if !ok || strings.Contains(path, "controller-runtime") || strings.Contains(path, "client-go") {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
}
