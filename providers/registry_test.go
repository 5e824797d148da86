package providers

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
)

type stubProvider struct{ opts Options }

func (stubProvider) Login(context.Context, string, Credentials) (*Token, error) { return nil, nil }

func stub(o Options) Provider { return stubProvider{opts: o} }

func TestRegistrationEndpoint(t *testing.T) {
	withDefault := Registration{Name: "a", DefaultEndpoint: "https://a.example"}
	without := Registration{Name: "b"}
	for _, tc := range []struct {
		reg        Registration
		spec, want string
	}{
		{withDefault, "", "https://a.example"},
		{withDefault, "  ", "https://a.example"},
		{withDefault, "https://other.example/v1", "https://other.example/v1"},
		{without, "", ""},
		{without, "https://b.example", "https://b.example"},
	} {
		if got := tc.reg.Endpoint(tc.spec); got != tc.want {
			t.Errorf("%s.Endpoint(%q) = %q, want %q", tc.reg.Name, tc.spec, got, tc.want)
		}
	}
}

func TestRegistrationCredentialKeyNames(t *testing.T) {
	for _, tc := range []struct {
		keys []CredentialKey
		want string
	}{
		{nil, ""},
		{[]CredentialKey{{Name: "token"}}, "token"},
		{[]CredentialKey{{Name: "email"}, {Name: "password"}}, "email, password"},
		{[]CredentialKey{{Name: "credentials.json"}, {Name: "channel", Alternative: true}}, "credentials.json, or channel"},
	} {
		if got := (Registration{CredentialKeys: tc.keys}).CredentialKeyNames(); got != tc.want {
			t.Errorf("CredentialKeyNames(%v) = %q, want %q", tc.keys, got, tc.want)
		}
	}
}

func TestRegistrationUsedCredentials(t *testing.T) {
	creds := Credentials{"user": []byte("u"), "password": []byte("p"), "note": []byte("unrelated")}

	declared := Registration{CredentialKeys: []CredentialKey{{Name: "user"}, {Name: "password"}, {Name: "otp"}}}
	if got := declared.UsedCredentials(creds); !sameKeys(got, "password", "user") {
		t.Errorf("declared keys: UsedCredentials = %v, want user and password", got)
	}
	if got := declared.UsedCredentials(nil); len(got) != 0 {
		t.Errorf("no credentials: UsedCredentials = %v", got)
	}

	selecting := Registration{
		CredentialKeys: []CredentialKey{{Name: "user"}},
		SelectCredentials: func(c Credentials) Credentials {
			return Credentials{"note": c["note"]}
		},
	}
	if got := selecting.UsedCredentials(creds); !sameKeys(got, "note") {
		t.Errorf("SelectCredentials: UsedCredentials = %v, want note alone", got)
	}

	registry, err := NewRegistry(Options{}, Registration{Name: "d", CredentialKeys: declared.CredentialKeys, New: stub})
	if err != nil {
		t.Fatal(err)
	}
	if got := registry.UsedCredentials("d", creds); !sameKeys(got, "password", "user") {
		t.Errorf("Registry.UsedCredentials = %v", got)
	}
	if got := registry.UsedCredentials("unknown", creds); len(got) != 0 {
		t.Errorf("unknown provider: UsedCredentials = %v, want nothing", got)
	}
}

func sameKeys(c Credentials, want ...string) bool {
	return slices.Equal(slices.Sorted(maps.Keys(c)), want)
}

func TestNewRegistry(t *testing.T) {
	opts := Options{UserAgent: "ua"}
	registry, err := NewRegistry(opts,
		Registration{Name: "b", New: stub},
		Registration{Name: "a", DefaultEndpoint: "https://a.example", New: stub})
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	if got := registry.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Names = %v", got)
	}
	a := registry["a"]
	if a.Name != "a" || a.Endpoint("") != "https://a.example" {
		t.Errorf("entry a = %+v", a)
	}
	if p, ok := a.Provider.(stubProvider); !ok || p.opts.UserAgent != "ua" || p.opts.Name != "a" {
		t.Errorf("provider a = %#v, want one built with the options and its name", a.Provider)
	}
	if p := registry["b"].Provider.(stubProvider); p.opts.Name != "b" {
		t.Errorf("provider b was built with Name %q", p.opts.Name)
	}

	for _, tc := range []struct {
		name string
		regs []Registration
		want string
	}{
		{"no name", []Registration{{New: stub}}, "no name"},
		{"no constructor", []Registration{{Name: "a"}}, `"a" has no constructor`},
		{"twice", []Registration{{Name: "a", New: stub}, {Name: "a", New: stub}}, `"a" is registered twice`},
		{"nil provider", []Registration{{Name: "a", New: func(Options) Provider { return nil }}}, "returned nil"},
	} {
		if _, err := NewRegistry(opts, tc.regs...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

type urlStub struct{ stubProvider }

func (urlStub) LoginURL(endpoint string) (string, error) {
	if endpoint == "" {
		return "", Errorf(EndpointNotAllowed, "no endpoint")
	}
	return endpoint + "/login", nil
}

func TestLoginURL(t *testing.T) {
	if got, err := LoginURL(stubProvider{}, "https://a.example/v1"); err != nil || got != "https://a.example/v1" {
		t.Errorf("a provider without LoginURL: %q, %v; want the endpoint itself", got, err)
	}
	if got, err := LoginURL(urlStub{}, "https://a.example/v1"); err != nil || got != "https://a.example/v1/login" {
		t.Errorf("a LoginURLer: %q, %v; want its answer", got, err)
	}
	if _, err := LoginURL(urlStub{}, ""); KindOf(err) != EndpointNotAllowed {
		t.Errorf("a LoginURLer's error: %v", err)
	}
}
