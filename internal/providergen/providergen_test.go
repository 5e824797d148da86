package providergen

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
)

type plain struct{}

func (plain) Login(context.Context, string, providers.Credentials) (*providers.Token, error) {
	return nil, nil
}

type configurable struct{ plain }

func (configurable) WithSettings([]byte) (providers.Provider, error) { return plain{}, nil }

func newPlain(providers.Options) providers.Provider        { return plain{} }
func newConfigurable(providers.Options) providers.Provider { return configurable{} }

func prov(name, defaultEndpoint string, mods ...func(*Provider)) Provider {
	p := Provider{Package: "example.com/m/providers/" + name, Registration: providers.Registration{
		Name: name, Title: "the " + name + " API", DefaultEndpoint: defaultEndpoint, New: newPlain,
		CredentialKeys: []providers.CredentialKey{{Name: "key", Description: "a key"}},
	}}
	for _, m := range mods {
		m(&p)
	}
	return p
}

func configured(hint string) func(*Provider) {
	return func(p *Provider) { p.New, p.SettingsHint = newConfigurable, hint }
}

func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		provs []Provider
		want  []Rule
	}{
		{"one without a default", []Provider{prov("a", "https://a.example"), prov("b", "")}, []Rule{{
			"self.provider == 'a' || (has(self.endpoint) && size(self.endpoint) > 0)",
			"spec.endpoint is required for provider b (it has no public default); set it to the provider's base URL, e.g. https://api.example.com"}}},
		{"several, with what their endpoint is", []Provider{prov("a", "https://a.example"), prov("b", ""), prov("c", "https://c.example"),
			prov("d", "", func(p *Provider) { p.EndpointIs = "the token URL" }), prov("e", "")}, []Rule{{
			"self.provider == 'a' || self.provider == 'c' || (has(self.endpoint) && size(self.endpoint) > 0)",
			"spec.endpoint is required for providers b, d and e (they have no public default); set it to the provider's base URL (for d the token URL), e.g. https://api.example.com"}}},
		{"none with a default", []Provider{prov("b", ""), prov("e", "")}, []Rule{{
			"has(self.endpoint) && size(self.endpoint) > 0",
			"spec.endpoint is required for providers b and e (they have no public default); set it to the provider's base URL, e.g. https://api.example.com"}}},
		{"all with a default", []Provider{prov("a", "https://a.example")}, nil},
		{"a configured provider", []Provider{prov("a", "https://a.example"), prov("f", "https://f.example", configured("it says how"))}, []Rule{
			{"self.provider != 'f' || has(self.f)", "spec.f is required for provider f: it says how"},
			{"self.provider == 'f' || !has(self.f)", "spec.f is only allowed with provider f"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Rules(tc.provs); !slices.Equal(got, tc.want) {
				t.Errorf("Rules =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	blocks := map[string]string{"f": "F"}
	for _, tc := range []struct {
		name  string
		provs []Provider
		want  string // "" for no error
	}{
		{"fine", []Provider{prov("a", ""), prov("f", "", configured("hint"))}, ""},
		{"bad name", []Provider{prov("A-1", "")}, "lowercase letters and digits"},
		{"twice", []Provider{prov("a", ""), prov("a", "")}, "registered twice"},
		{"no title", []Provider{prov("a", "", func(p *Provider) { p.Title = " " })}, "set Title"},
		{"a newline", []Provider{prov("a", "", func(p *Provider) { p.Title = "x\ny" })}, "Title must be one line"},
		{"no block", []Provider{prov("g", "", configured("hint"))}, `a field with JSON name "g"`},
		{"no hint", []Provider{prov("f", "", configured(""))}, "set SettingsHint"},
		{"a hint, not configurable", []Provider{prov("a", "", func(p *Provider) { p.SettingsHint = "x" })}, "not providers.Configurable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.provs, blocks)
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestAPI(t *testing.T) {
	provs := []Provider{prov("a", "https://a.example"), prov("f", "", configured("it says how"), func(p *Provider) { p.CredentialKeys = nil })}
	src, err := API(provs, map[string]string{"f": "F"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"// +kubebuilder:validation:Enum=a;f\ntype Provider string",
		"//   - a: the a API. spec.endpoint defaults to https://a.example. Credentials\n//     Secret keys: key, a key.",
		"//   - f: the f API. spec.endpoint (required) is its base URL. Credentials Secret\n//     keys: those its settings (spec.f) read.",
		`// +kubebuilder:validation:XValidation:rule="self.provider == 'a' || (has(self.endpoint) && size(self.endpoint) > 0)",message="spec.endpoint is required for provider f`,
		`// +kubebuilder:validation:XValidation:rule="self.provider != 'f' || has(self.f)",message="spec.f is required for provider f: it says how"`,
		"type providerRules struct{}",
		"\tcase \"f\":\n\t\tif s.F != nil {\n\t\t\treturn s.F\n\t\t}\n",
	} {
		if !strings.Contains(string(src), want) {
			t.Errorf("the API file lacks\n%s\nin\n%s", want, src)
		}
	}
	if _, err := API([]Provider{prov("g", "", configured("x"))}, nil); err == nil {
		t.Error("a configured provider without a block in the API is rendered")
	}
}

func TestFakes(t *testing.T) {
	src, err := Fakes([]Provider{prov("b", ""), prov("a", "")})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\t\"example.com/m/providers/a/atest\"\n\t\"example.com/m/providers/b/btest\"\n\t\"github.com/tokensync/tokensync/providers/providertest/fake\"\n",
		"\t\tbtest.Fake,\n\t\tatest.Fake,\n",
	} {
		if !strings.Contains(string(src), want) {
			t.Errorf("the fakes file lacks\n%s\nin\n%s", want, src)
		}
	}
}

// TestTheTree reads the files the generator reads: the registration list,
// LoginSpec's settings blocks and the fakes, as make generate does.
func TestTheTree(t *testing.T) {
	root := filepath.Join("..", "..")
	pkgs, err := RegistrationPackages(filepath.Join(root, BuiltinFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 5 || pkgs[0] != "github.com/tokensync/tokensync/providers/aml" {
		t.Errorf("registration packages %v", pkgs)
	}
	blocks, err := SpecFields(filepath.Join(root, APIDir))
	if err != nil {
		t.Fatal(err)
	}
	if blocks["oauth2"] != "OAuth2" || blocks["http"] != "HTTP" || blocks["endpoint"] != "Endpoint" {
		t.Errorf("spec fields %v", blocks)
	}
	for dir, want := range map[string]bool{"providers/aml/amltest": true, "providers/aml": false, "providers/nothing-here": false} {
		if got, err := DeclaresFake(filepath.Join(root, dir)); got != want || err != nil {
			t.Errorf("DeclaresFake(%s) = %v, %v; want %v", dir, got, err, want)
		}
	}
}

func TestRegistrationPackagesRefusesOtherShapes(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"call.go": `package builtin
import "example.com/m/providers/a"
func Registrations() []providers.Registration { return []providers.Registration{a.Registration, a.Make()} }`,
		"none.go": `package builtin
func Other() {}`,
	} {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if pkgs, err := RegistrationPackages(file); err == nil {
			t.Errorf("%s: packages %v, want an error", name, pkgs)
		}
	}
}
