package v1alpha1_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/tokensync/tokensync/providers/builtin"
)

// specSchema reads the TokenRequest CRD (generated from this package's
// markers) and returns the OpenAPI schema of its spec.
func specSchema(t *testing.T) map[string]any {
	t.Helper()
	path := filepath.Join("..", "..", "config", "crd", "bases", "tokensync.io_tokenrequests.yaml")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	crd := map[string]any{}
	if err := yaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&crd); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	versions, _, _ := unstructured.NestedSlice(crd, "spec", "versions")
	if len(versions) != 1 {
		t.Fatalf("%s: %d versions, want 1", path, len(versions))
	}
	version, _ := versions[0].(map[string]any)
	spec, ok, _ := unstructured.NestedMap(version, "schema", "openAPIV3Schema", "properties", "spec")
	if !ok {
		t.Fatalf("%s: no spec schema", path)
	}
	return spec
}

// TestProvidersAgreeWithRegistry: the API still names providers where
// admission needs them (the enum of spec.provider, the rule that requires
// spec.endpoint for providers without a default, and their descriptions).
// They must say what providers/builtin registers; adding a provider means
// editing the markers on Provider and TokenRequestSpec, then make manifests.
func TestProvidersAgreeWithRegistry(t *testing.T) {
	var names, withDefault, withoutDefault []string
	defaults := map[string]string{}
	for _, r := range builtin.Registrations() {
		names = append(names, r.Name)
		if r.DefaultEndpoint != "" {
			withDefault = append(withDefault, r.Name)
			defaults[r.Name] = r.DefaultEndpoint
		} else {
			withoutDefault = append(withoutDefault, r.Name)
		}
	}
	slices.Sort(names)
	slices.Sort(withDefault)
	spec := specSchema(t)

	enum, _, _ := unstructured.NestedSlice(spec, "properties", "provider", "enum")
	var enumNames []string
	for _, v := range enum {
		s, _ := v.(string)
		enumNames = append(enumNames, s)
	}
	slices.Sort(enumNames)
	if !slices.Equal(enumNames, names) {
		t.Errorf("spec.provider enum (+kubebuilder:validation:Enum on type Provider) is %v; the registry has %v", enumNames, names)
	}
	providerDoc, _, _ := unstructured.NestedString(spec, "properties", "provider", "description")
	for _, name := range names {
		if !containsWord(providerDoc, name) {
			t.Errorf("spec.provider's description %q does not name %s", providerDoc, name)
		}
	}

	rules, _, _ := unstructured.NestedSlice(spec, "x-kubernetes-validations")
	var rule, message string
	for _, r := range rules {
		r, _ := r.(map[string]any)
		if text, _ := r["rule"].(string); strings.Contains(text, "self.provider") && strings.Contains(text, "self.endpoint") {
			rule, _ = r["rule"].(string)
			message, _ = r["message"].(string)
		}
	}
	if rule == "" {
		t.Fatal("no validation rule on spec relates spec.provider to spec.endpoint")
	}
	exempt := providersIn(rule)
	if !slices.Equal(exempt, withDefault) {
		t.Errorf("the rule %q lets %v omit spec.endpoint; the providers with a DefaultEndpoint are %v", rule, exempt, withDefault)
	}
	for _, name := range withoutDefault {
		if !containsWord(message, name) {
			t.Errorf("the rule's message %q does not name %s, which has no default endpoint", message, name)
		}
	}
	for _, name := range withDefault {
		if containsWord(message, name) {
			t.Errorf("the rule's message %q names %s, which has a default endpoint", message, name)
		}
	}

	endpointDoc, _, _ := unstructured.NestedString(spec, "properties", "endpoint", "description")
	for name, endpoint := range defaults {
		if !strings.Contains(endpointDoc, endpoint) {
			t.Errorf("spec.endpoint's description %q does not give %s's default %s", endpointDoc, name, endpoint)
		}
	}
}

// providersIn returns the provider names a CEL rule compares spec.provider
// with (self.provider == 'x', or self.provider in ['x', 'y']), sorted.
func providersIn(rule string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`self\.provider\s*==\s*'([^']*)'`).FindAllStringSubmatch(rule, -1) {
		out = append(out, m[1])
	}
	for _, m := range regexp.MustCompile(`self\.provider\s+in\s*\[([^\]]*)\]`).FindAllStringSubmatch(rule, -1) {
		for _, q := range regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(m[1], -1) {
			out = append(out, q[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func containsWord(text, word string) bool {
	return regexp.MustCompile(`\b` + regexp.QuoteMeta(word) + `\b`).MatchString(text)
}
