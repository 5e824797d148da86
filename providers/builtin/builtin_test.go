package builtin

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokensync/tokensync/internal/cabundle"
	"github.com/tokensync/tokensync/internal/cabundle/cabundletest"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
	"github.com/tokensync/tokensync/providers/providertest/fake"
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

// TestFakes: every built-in provider has a test registration (its
// providertest fake, Fakes) that its client agrees with; tests, the demo and
// the benchmarks log in to it.
func TestFakes(t *testing.T) {
	for _, r := range Registrations() {
		f, ok := providertest.FakeOf(r.Name)
		if !ok {
			t.Errorf("provider %s has no fake: declare Fake in its folder's <name>test package (docs/adding-a-provider.md), then run make generate", r.Name)
			continue
		}
		t.Run(r.Name, func(t *testing.T) { conformance.RunFake(t, r, f) })
	}
	if n, want := len(providertest.Fakes()), len(Registrations()); n != want {
		t.Errorf("%d fakes for %d built-in providers: run make generate", n, want)
	}
}

// testFake returns name's fake, credentials as providers.Credentials.
func testFake(t *testing.T, name string) (fake.Provider, providers.Credentials) {
	t.Helper()
	f, ok := providertest.FakeOf(name)
	if !ok {
		t.Fatalf("%s has no fake (see TestFakes)", name)
	}
	creds := providers.Credentials{}
	for k, v := range f.Credentials {
		creds[k] = []byte(v)
	}
	return f, creds
}

// configured returns registry's provider name, configured by its fake's
// settings when it is Configurable, as the controller configures it.
func configured(t *testing.T, registry providers.Registry, name string) providers.Provider {
	t.Helper()
	p := registry[name].Provider
	if c, ok := p.(providers.Configurable); ok {
		f, _ := testFake(t, name)
		var err error
		if p, err = c.WithSettings([]byte(f.Settings)); err != nil {
			t.Fatalf("settings of %s: %v", name, err)
		}
	}
	return p
}

// loginPath is the path a login to name's fake is sent to.
func loginPath(t *testing.T, name string) string {
	t.Helper()
	f, _ := testFake(t, name)
	if !f.Served() {
		f, _ = testFake(t, f.Via)
	}
	return f.Path
}

// TestLoginURL: every built-in provider says which URL its login goes to,
// the URL the endpoint policy judges, and refuses a dot segment in the
// endpoint rather than resolving it.
func TestLoginURL(t *testing.T) {
	registry := NewRegistry(providers.Options{})
	const base = "https://gw.example.com/tenant-a"
	for _, name := range registry.Names() {
		p := configured(t, registry, name)
		if _, ok := p.(providers.LoginURLer); !ok {
			t.Errorf("%s does not implement providers.LoginURLer", name)
		}
		f, _ := testFake(t, name)
		got, err := providers.LoginURL(p, f.Endpoint(base))
		if want := base + loginPath(t, name); err != nil || got != want {
			t.Errorf("%s: LoginURL = %q, %v; want %q", name, got, err, want)
		}
		for _, bad := range []string{"https://gw.example.com/tenant-a/../admin", "https://gw.example.com/tenant-a/%2e%2e", "https://gw.example.com/tenant-a%2F.."} {
			if got, err := providers.LoginURL(p, bad); providers.KindOf(err) != providers.EndpointNotAllowed {
				t.Errorf("%s: LoginURL(%q) = %q, %v; want EndpointNotAllowed", name, bad, got, err)
			}
		}
	}
	// Unconfigured, the http login has no path yet: it says what Login would.
	if _, err := providers.LoginURL(registry["http"].Provider, base); providers.KindOf(err) != providers.InvalidTemplate {
		t.Errorf("http unconfigured: LoginURL error %v, want InvalidTemplate", err)
	}
}

// TestCheckURLBeforeEverySend: with providers.Options.CheckURL, as main.go
// builds the registry, every built-in provider asks it, with its own name
// and its login URL, before sending; refused, nothing reaches the server
// and the login fails with the check's EndpointNotAllowed. Allowed, the
// same logins reach it (the check is not vacuous).
func TestCheckURLBeforeEverySend(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	var (
		mu     sync.Mutex
		asked  []string
		refuse = true
	)
	check := func(provider string, u *url.URL) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, provider+" "+u.String())
		if refuse {
			return providers.Errorf(providers.EndpointNotAllowed, "refused by the test policy")
		}
		return nil
	}
	registry := NewRegistry(providers.Options{Timeout: 5 * time.Second, CheckURL: check})
	for _, name := range registry.Names() {
		p := configured(t, registry, name)
		f, creds := testFake(t, name)
		endpoint := f.Endpoint(srv.URL + "/tenant-a")
		loginURL, err := providers.LoginURL(p, endpoint)
		if err != nil {
			t.Fatal(err)
		}
		asked = nil
		_, err = p.Login(context.Background(), endpoint, creds)
		if providers.KindOf(err) != providers.EndpointNotAllowed || !strings.Contains(err.Error(), "refused by the test policy") {
			t.Errorf("%s: Login = %v, want the check's EndpointNotAllowed", name, err)
		}
		if want := name + " " + loginURL; len(asked) != 1 || asked[0] != want {
			t.Errorf("%s: the check was asked %q, want [%q]", name, asked, want)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("the server saw %d requests; refused logins must send nothing", n)
	}

	refuse = false
	for _, name := range registry.Names() {
		before := requests.Load()
		f, creds := testFake(t, name)
		if _, err := configured(t, registry, name).Login(context.Background(), f.Endpoint(srv.URL+"/tenant-a"), creds); providers.KindOf(err) != providers.ProviderUnavailable {
			t.Errorf("%s: allowed Login = %v, want the server's 503", name, err)
		}
		if requests.Load() == before {
			t.Errorf("%s: the allowed login never reached the server", name)
		}
	}
}

// TestCABundleForEveryProvider: with RootCAs from a CA bundle file, as
// main.go wires --ca-bundle-file, every built-in provider logs in to a
// server whose certificate a private CA signed, which each refuses without
// the bundle. When the file is replaced on disk as the kubelet replaces a
// mounted ConfigMap (a new CA, the server now presenting a certificate of
// it), the next login of each trusts the new CA, with the same registry
// and clients, once the bundle's CheckInterval has passed on its clock.
func TestCABundleForEveryProvider(t *testing.T) {
	first, second := cabundletest.NewCA(t, "first"), cabundletest.NewCA(t, "second")
	fakes := providertest.New()
	t.Cleanup(fakes.Close)
	srv := cabundletest.StartServer(t, first, fakes.Handler())
	dir := t.TempDir()
	cabundletest.WriteLikeKubelet(t, dir, map[string][]byte{"ca.crt": first.PEM})
	var clock atomic.Int64 // seconds on the bundle's clock
	bundle, err := cabundle.Load(filepath.Join(dir, "ca.crt"), cabundle.Options{Now: func() time.Time { return time.Unix(clock.Load(), 0) }})
	if err != nil {
		t.Fatal(err)
	}
	login := func(registry providers.Registry, name string) error {
		f, creds := testFake(t, name)
		token, err := configured(t, registry, name).Login(context.Background(), f.Endpoint(srv.URL), creds)
		if err == nil && token.Value == "" {
			err = errors.New("an empty token")
		}
		return err
	}

	without := NewRegistry(providers.Options{Timeout: 5 * time.Second})
	registry := NewRegistry(providers.Options{Timeout: 5 * time.Second, RootCAs: bundle.Pool})
	for _, name := range registry.Names() {
		if err := login(without, name); providers.KindOf(err) != providers.ProviderUnavailable || !strings.Contains(err.Error(), "certificate could not be verified") {
			t.Errorf("%s without the bundle: %v, want the certificate refused", name, err)
		}
		if err := login(registry, name); err != nil {
			t.Errorf("%s with the bundle: %v", name, err)
		}
	}

	srv.ServeCertificateOf(t, second)
	cabundletest.WriteLikeKubelet(t, dir, map[string][]byte{"ca.crt": second.PEM})
	clock.Add(int64(cabundle.CheckInterval / time.Second))
	for _, name := range registry.Names() {
		if err := login(registry, name); err != nil {
			t.Errorf("%s after the bundle was replaced: %v", name, err)
		}
	}
}
