package v1alpha1_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
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

// TestProvidersAgreeWithRegistry: the API names providers where admission
// needs them (the enum of spec.provider, the rule that requires
// spec.endpoint for providers without a default, and their descriptions),
// all generated from providers/builtin (zz_generated.providers.go). The CRD
// must say what the registry does: when it does not, make manifests
// generate has not run since a provider was registered.
func TestProvidersAgreeWithRegistry(t *testing.T) {
	const regenerate = "; run make manifests generate"
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
		t.Errorf("spec.provider enum is %v; the registry has %v%s", enumNames, names, regenerate)
	}
	providerDoc, _, _ := unstructured.NestedString(spec, "properties", "provider", "description")
	for _, name := range names {
		if !containsWord(providerDoc, name) {
			t.Errorf("spec.provider's description %q does not name %s%s", providerDoc, name, regenerate)
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
		t.Fatal("no validation rule on spec relates spec.provider to spec.endpoint" + regenerate)
	}
	exempt := providersIn(rule)
	if !slices.Equal(exempt, withDefault) {
		t.Errorf("the rule %q lets %v omit spec.endpoint; the providers with a DefaultEndpoint are %v%s", rule, exempt, withDefault, regenerate)
	}
	for _, name := range withoutDefault {
		if !containsWord(message, name) {
			t.Errorf("the rule's message %q does not name %s, which has no default endpoint%s", message, name, regenerate)
		}
	}
	for _, name := range withDefault {
		if containsWord(message, name) {
			t.Errorf("the rule's message %q names %s, which has a default endpoint%s", message, name, regenerate)
		}
	}

	for name, endpoint := range defaults {
		if !strings.Contains(providerDoc, endpoint) {
			t.Errorf("spec.provider's description %q does not give %s's default endpoint %s%s", providerDoc, name, endpoint, regenerate)
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

// TestSettingsBlocksAgreeWithRegistry: the providers with a settings block
// in the API (ProviderSettings) are exactly the registered Configurable
// ones, and each reads every field of its block: a fully filled block's
// JSON, which is what the controller hands over, is accepted by the
// provider, which refuses fields it does not know.
func TestSettingsBlocksAgreeWithRegistry(t *testing.T) {
	hour := metav1.Duration{Duration: time.Hour}
	full := tokensyncv1alpha1.TokenRequestSpec{
		LoginSpec: tokensyncv1alpha1.LoginSpec{
			OAuth2: &tokensyncv1alpha1.OAuth2Settings{
				Scopes:          []tokensyncv1alpha1.OAuth2Scope{"read", "write"},
				Parameters:      map[string]tokensyncv1alpha1.OAuth2ParameterValue{"audience": "https://api.example.com"},
				ClientAuth:      "post",
				DefaultLifetime: &hour,
			},
			HTTP: &tokensyncv1alpha1.HTTPSettings{
				Method:  "PUT",
				Path:    "/login",
				Headers: map[string]tokensyncv1alpha1.Template{"Accept": "application/json"},
				Body:    &tokensyncv1alpha1.HTTPBody{Format: "form", Fields: map[string]tokensyncv1alpha1.Template{"user": "{{ .user }}"}},
				Token:   tokensyncv1alpha1.HTTPToken{JSONPointer: "/token"},
				Expiry: tokensyncv1alpha1.HTTPExpiry{
					FromJWT: true, JSONPointer: "/expires_in", Format: "SecondsFromNow", Lifetime: &hour,
				},
				Success: &tokensyncv1alpha1.HTTPSuccess{JSONPointer: "/status", Equals: "ok"},
			},
		},
	}
	// Every field set, so that a field a provider does not know shows; the
	// token's modes exclude each other, so each is tried in turn.
	tokenModes := []tokensyncv1alpha1.HTTPToken{{JSONPointer: "/token"}, {RawBody: true}, {Header: "X-Token"}}
	allModes := *full.HTTP
	allModes.Token = tokensyncv1alpha1.HTTPToken{JSONPointer: "/token", RawBody: true, Header: "X-Token"}
	for _, block := range []any{full.OAuth2, &allModes} {
		requireAllFieldsSet(t, reflect.ValueOf(block).Elem())
	}
	registry := builtin.NewRegistry(providers.Options{})
	for _, name := range registry.Names() {
		spec := full
		spec.Provider = tokensyncv1alpha1.Provider(name)
		settings := spec.ProviderSettings()
		configurable, isConfigurable := registry[name].Provider.(providers.Configurable)
		if (settings != nil) != isConfigurable {
			t.Errorf("%s: settings block %T, provider Configurable %v", name, settings, isConfigurable)
			continue
		}
		if settings == nil {
			continue
		}
		for _, mode := range tokenModes {
			h := *full.HTTP
			h.Token = mode
			spec.HTTP = &h
			data, err := json.Marshal(spec.ProviderSettings())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := configurable.WithSettings(data); err != nil {
				t.Errorf("%s: the provider refuses its API block %s: %v", name, data, err)
			}
		}
		spec.OAuth2, spec.HTTP = nil, nil
		if spec.ProviderSettings() != nil {
			t.Errorf("%s: settings without a block", name)
		}
	}
}

func requireAllFieldsSet(t *testing.T, v reflect.Value) {
	t.Helper()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.IsZero() {
			t.Errorf("%s.%s is not set in the test's full block", v.Type().Name(), v.Type().Field(i).Name)
			continue
		}
		if f.Kind() == reflect.Pointer && f.Elem().Kind() == reflect.Struct && f.Type() != reflect.TypeOf(&metav1.Duration{}) {
			requireAllFieldsSet(t, f.Elem())
		}
		if f.Kind() == reflect.Struct {
			requireAllFieldsSet(t, f)
		}
	}
}
