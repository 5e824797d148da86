package builtin

import (
	"maps"
	"slices"
	"testing"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/providertest"
)

func TestRegistrations(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Registrations() {
		if r.Name == "" || seen[r.Name] {
			t.Errorf("registration name %q is empty or repeated", r.Name)
		}
		seen[r.Name] = true
		if r.New == nil {
			t.Errorf("%s: no constructor", r.Name)
		}
		if len(r.CredentialKeys) == 0 {
			// Only a provider configured by its TokenRequest may leave its
			// keys to its settings; it then names them itself.
			_, configurable := r.New(providers.Options{}).(providers.Configurable)
			_, names := r.New(providers.Options{}).(providers.CredentialUser)
			if !configurable || !names {
				t.Errorf("%s: no credential keys", r.Name)
			}
		}
		for _, k := range r.CredentialKeys {
			if k.Name == "" || k.Description == "" {
				t.Errorf("%s: credential key %+v lacks a name or a description", r.Name, k)
			}
		}
	}
}

func TestNewRegistry(t *testing.T) {
	registry := NewRegistry(providers.Options{})
	if len(registry) != len(Registrations()) {
		t.Fatalf("registry has %d providers, want %d", len(registry), len(Registrations()))
	}
	for name, e := range registry {
		if e.Provider == nil || e.Name != name {
			t.Errorf("%s: entry %+v", name, e)
		}
		// The controller relies on a precheck that sends nothing.
		if _, ok := e.Provider.(providers.Validator); !ok {
			t.Errorf("%s: the provider does not implement providers.Validator", name)
		}
	}
}

// TestMessages pins the key names the controller quotes when a credentials
// Secret is missing, and the documented default endpoint.
func TestMessages(t *testing.T) {
	registry := NewRegistry(providers.Options{})
	for name, want := range map[string]struct{ keys, endpoint string }{
		"aml":     {"email, password", "https://api.amlwatcher.com"},
		"amplifi": {"credentials.json, or channel", ""},
		"partner": {"accessKey, secret", ""},
		"oauth2":  {"clientId, clientSecret", ""},
		"http":    {"", ""}, // its keys are the ones spec.http's templates read (see TestConfiguredCredentials)
	} {
		e, ok := registry[name]
		if !ok {
			t.Errorf("%s is not registered", name)
			continue
		}
		if got := e.CredentialKeyNames(); got != want.keys {
			t.Errorf("%s: CredentialKeyNames = %q, want %q", name, got, want.keys)
		}
		if got := e.Endpoint(""); got != want.endpoint {
			t.Errorf("%s: default endpoint %q, want %q", name, got, want.endpoint)
		}
	}
}

// TestUsedCredentials: an unrelated key in a credentials Secret is never
// part of what a provider would send.
func TestUsedCredentials(t *testing.T) {
	registry := NewRegistry(providers.Options{})
	unrelated := map[string]string{"note": "owned by team x", "other-password": "x"}
	for _, tc := range []struct {
		provider string
		creds    map[string]string
		want     []string
	}{
		{"aml", map[string]string{"email": "a@b.c", "password": "p"}, []string{"email", "password"}},
		{"aml", map[string]string{"email": "a@b.c"}, []string{"email"}},
		{"partner", map[string]string{"accessKey": "k", "secret": "s"}, []string{"accessKey", "secret"}},
		{"amplifi", map[string]string{"credentials.json": `{"channel": "test", "deviceTag": "t"}`}, []string{"credentials.json"}},
		{"amplifi", map[string]string{"channel": "internet", "userName": "u", "password": "p"}, []string{"channel", "password", "userName"}},
		{"oauth2", map[string]string{"clientId": "i", "clientSecret": "s"}, []string{"clientId", "clientSecret"}},
	} {
		creds := providers.Credentials{}
		for k, v := range tc.creds {
			creds[k] = []byte(v)
		}
		for k, v := range unrelated {
			creds[k] = []byte(v)
		}
		got := slices.Sorted(maps.Keys(registry.UsedCredentials(tc.provider, creds)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: UsedCredentials(%v) keys = %v, want %v", tc.provider, slices.Sorted(maps.Keys(creds)), got, tc.want)
		}
	}
}

// TestConfiguredCredentials: a provider configured by its TokenRequest
// uses the keys its settings name, and no other.
func TestConfiguredCredentials(t *testing.T) {
	registry := NewRegistry(providers.Options{})
	creds := providers.Credentials{"email": []byte("e"), "password": []byte("p"), "note": []byte("unrelated"), "clientId": []byte("i")}
	p, err := registry["http"].Provider.(providers.Configurable).WithSettings([]byte(
		`{"body": {"fields": {"email": "{{ .email }}", "password": "{{ .password }}"}}, "token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`))
	if err != nil {
		t.Fatal(err)
	}
	keys := p.(providers.CredentialUser)
	if got := slices.Sorted(maps.Keys(keys.UsedCredentials(creds))); !slices.Equal(got, []string{"email", "password"}) || keys.CredentialKeyNames() != "email, password" {
		t.Errorf("http: UsedCredentials keys %v, names %q", got, keys.CredentialKeyNames())
	}
	if _, ok := registry["oauth2"].Provider.(providers.Configurable); !ok {
		t.Error("oauth2 is not Configurable")
	}
}

// TestFakeServesEveryProvider: the fake providers (providertest) answer
// for every built-in provider with a wire format of its own, so tests, the
// demo and the benchmarks can exercise it. The http login has none: it is
// tested against every fake (providers/httplogin, controllers).
func TestFakeServesEveryProvider(t *testing.T) {
	got := slices.DeleteFunc(NewRegistry(providers.Options{}).Names(), func(name string) bool { return name == "http" })
	if want := providertest.Names(); !slices.Equal(got, want) {
		t.Errorf("built-in providers %v, fake providers %v", got, want)
	}
}
