package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/internal/providergen"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/expiry"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// TestAddingAProvider walks docs/adding-a-provider.md with a throwaway
// provider, acme, through the mechanisms a real one goes through, so that
// the guide cannot rot unnoticed:
//
//  1. its folder, providers/acme: the provider and its Registration (here,
//     acmeProvider and acmeRegistration);
//  2. its fake, providers/acme/acmetest.Fake (here, acmeFake);
//  3. one line in Registrations;
//  4. make generate: the API's enum, documentation and admission rules,
//     and the fakes' list, name it;
//
// and the checks a real provider's tests and this package's then run: the
// conformance suite, its client against its fake, the registry.
func TestAddingAProvider(t *testing.T) {
	const acmePackage = "github.com/tokensync/tokensync/providers/acme"

	// 3. One line in Registrations.
	regs := append(Registrations(), acmeRegistration)
	registry, err := providers.NewRegistry(providers.Options{}, regs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := registry["acme"].Provider.(providers.Validator); !ok {
		t.Error("acme is registered without its Validate")
	}

	// 4. make generate, from the list with acme's line.
	pkgs, err := providergen.RegistrationPackages(filepath.Join("..", "..", providergen.BuiltinFile))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := providergen.SpecFields(filepath.Join("..", "..", providergen.APIDir))
	if err != nil {
		t.Fatal(err)
	}
	var provs []providergen.Provider
	for i, r := range Registrations() {
		provs = append(provs, providergen.Provider{Registration: r, Package: pkgs[i]})
	}
	// The committed files are what the generator writes for today's list.
	for file, render := range map[string]func([]providergen.Provider) ([]byte, error){
		providergen.APIFile:   func(p []providergen.Provider) ([]byte, error) { return providergen.API(p, blocks) },
		providergen.FakesFile: providergen.Fakes,
	} {
		want, err := render(provs)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join("..", "..", file)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not what providers/builtin generates (%v): run make generate", file, err)
		}
	}
	withAcme := append(provs, providergen.Provider{Registration: acmeRegistration, Package: acmePackage})
	api, err := providergen.API(withAcme, blocks)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"+kubebuilder:validation:Enum=aml;amplifi;partner;oauth2;http;acme\n",
		"//   - acme: ACME Sessions. spec.endpoint (required) is its base URL.",
		"message=\"spec.endpoint is required for providers amplifi, partner, oauth2, http and acme (they have no public default)",
	} {
		if !strings.Contains(string(api), want) {
			t.Errorf("the API generated with acme lacks %q:\n%s", want, api)
		}
	}
	fakes, err := providergen.Fakes(withAcme)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"` + acmePackage + `/acmetest"`, "\t\tacmetest.Fake,\n"} {
		if !strings.Contains(string(fakes), want) {
			t.Errorf("the fakes' list generated with acme lacks %q:\n%s", want, fakes)
		}
	}
	// A provider its TokenRequest configures needs its block in the API
	// first; the generator says where.
	configured := acmeRegistration
	configured.Name, configured.SettingsHint = "acmeconf", "its settings"
	configured.New = func(providers.Options) providers.Provider { return configurableAcme{} }
	_, err = providergen.API(append(provs, providergen.Provider{Registration: configured, Package: acmePackage + "conf"}), blocks)
	if err == nil || !strings.Contains(err.Error(), "tokenrequest_types.go") {
		t.Errorf("a configured provider without a settings block: %v", err)
	}

	// What the provider's own tests run (1).
	t.Run("conformance", func(t *testing.T) {
		conformance.RunUndocumented(t, func(o providers.Options) providers.Provider { return newAcme(o) }, http.StatusOK,
			providers.Credentials{"apiKey": []byte(conformance.SentinelSecret)})
	})
	// What TestFakes runs for every provider (2): the fake served beside
	// the built-in ones.
	t.Run("fake", func(t *testing.T) { conformance.RunFake(t, acmeRegistration, acmeFake) })
	t.Run("served", func(t *testing.T) {
		s := providertest.Start(t, providertest.WithFakes(acmeFake))
		token, err := registry["acme"].Provider.Login(context.Background(), acmeFake.Endpoint(s.URL()), providers.Credentials{"apiKey": []byte("k-1")})
		if err != nil || token.Value != s.LastToken("acme") || s.LoginsFor("acme", "k-1") != 1 || s.Logins(providertest.AML) != 0 {
			t.Errorf("Login = %v, %v", token, err)
		}
	})
}

// acme's documentation, for this test: POST {endpoint}/v1/sessions with
// {"apiKey"} answers 200 {"session", "ttl"}, ttl in seconds; a wrong key
// 401 {"message"}.
const (
	acmeTitle = "ACME Sessions"
	acmePath  = "/v1/sessions"
)

var acmeRegistration = providers.Registration{
	Name:           "acme",
	Title:          acmeTitle,
	CredentialKeys: []providers.CredentialKey{{Name: "apiKey", Description: "the API key"}},
	New:            func(o providers.Options) providers.Provider { return newAcme(o) },
}

type acmeProvider struct {
	client *http.Client
	now    func() time.Time
}

func newAcme(o providers.Options) *acmeProvider {
	return &acmeProvider{client: login.HTTPClient(o), now: login.Clock(o)}
}

func (p *acmeProvider) Validate(creds providers.Credentials) error {
	return login.RequireKeys(creds, "apiKey")
}

func (p *acmeProvider) LoginURL(endpoint string) (string, error) {
	return login.JoinURL(endpoint, acmePath)
}

func (p *acmeProvider) Login(ctx context.Context, endpoint string, creds providers.Credentials) (*providers.Token, error) {
	if err := p.Validate(creds); err != nil {
		return nil, err
	}
	url, err := p.LoginURL(endpoint)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"apiKey": string(creds["apiKey"])})
	obtainedAt := p.now()
	reply, err := login.SendJSON(ctx, p.client, p.now, login.JSONRequest{Provider: acmeTitle, Method: http.MethodPost, URL: url, Body: body})
	if err != nil {
		return nil, err
	}
	if reply.StatusCode >= 300 {
		return nil, login.ClientError(acmeTitle, reply.StatusCode, "apiKey")
	}
	var answer struct {
		Session *string          `json:"session"`
		TTL     *float64         `json:"ttl"`
		Error   *json.RawMessage `json:"error"`
	}
	switch {
	case json.Unmarshal(reply.Body, &answer) != nil:
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with a body that is not the documented JSON object", acmeTitle, reply.StatusCode)
	case answer.Error != nil:
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with an error", acmeTitle, reply.StatusCode)
	case answer.Session == nil || answer.TTL == nil || *answer.TTL <= 0 || *answer.TTL > 1e9:
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d without a session and a positive ttl", acmeTitle, reply.StatusCode)
	}
	if err := login.CheckTokenValue(acmeTitle, *answer.Session); err != nil {
		return nil, err
	}
	expiresAt := obtainedAt.Add(time.Duration(*answer.TTL * float64(time.Second)))
	if err := expiry.Check(acmeTitle, p.now(), expiresAt); err != nil {
		return nil, err
	}
	return &providers.Token{Value: *answer.Session, ObtainedAt: obtainedAt, ExpiresAt: expiresAt}, nil
}

type configurableAcme struct{ *acmeProvider }

func (configurableAcme) WithSettings([]byte) (providers.Provider, error) {
	return nil, errors.New("unused")
}

// acmeFake is acme's fake, written from its documentation above.
var acmeFake = fake.Provider{
	Name:          "acme",
	Method:        http.MethodPost,
	Path:          acmePath,
	SuccessStatus: http.StatusOK,
	Lifetime:      time.Hour,
	Login: func(l fake.Login, w http.ResponseWriter, r *http.Request) {
		req, ok := fake.ReadJSONObject(r)
		key, _ := fake.StringField(req, "apiKey")
		switch {
		case !ok || key == "":
			fake.WriteJSON(w, http.StatusBadRequest, `{"message": "apiKey is required"}`)
		case !l.Accepts(map[string]string{"apiKey": key}):
			fake.WriteJSON(w, http.StatusUnauthorized, `{"message": "unknown API key"}`)
		default:
			var ttl time.Duration
			session := l.Issue(key, func(m fake.Mint) string { ttl = m.Lifetime; return m.LetterToken() })
			fake.WriteJSON(w, http.StatusOK, `{"session": "`+session+`", "ttl": `+fmtSeconds(ttl)+`}`)
		}
	},
	ErrorBody:   func(status int) string { return `{"message": ` + fake.Quote(http.StatusText(status)) + `}` },
	NoTokenBody: `{"ttl": 3600}`,
	HugeBody:    func(filler string) string { return `{"session": "` + filler + `", "ttl": 3600}` },
	Credentials: map[string]string{"apiKey": "k-1"},
	SentinelCredentials: func(sentinel string) map[string]string {
		return map[string]string{"apiKey": sentinel}
	},
	Hostile: func(h fake.Hostility, status int, text string) (fake.Answer, bool) {
		q := fake.Quote(text)
		switch h {
		case fake.HostileError:
			return fake.JSONAnswer(status, `{"message": `+q+`}`), true
		case fake.HostileNoToken:
			return fake.JSONAnswer(200, `{"ttl": 60, "note": `+q+`}`), true
		case fake.HostileBadToken:
			return fake.JSONAnswer(200, `{"session": `+fake.Quote("\x01"+text)+`, "ttl": 60}`), true
		case fake.HostileBadExpiry:
			return fake.JSONAnswer(200, `{"session": "s", "ttl": `+q+`}`), true
		case fake.HostileFailure:
			return fake.JSONAnswer(200, `{"error": `+q+`}`), true
		case fake.HostileToken:
			return fake.JSONAnswer(200, `{"session": `+q+`, "ttl": 3600}`), true
		}
		return fake.Answer{}, false
	},
}

func fmtSeconds(d time.Duration) string {
	b, _ := json.Marshal(d.Seconds())
	return string(b)
}
