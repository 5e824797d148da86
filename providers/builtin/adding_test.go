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
// provider (acme in the guide; named throwaway here, which no real provider
// will be), through the mechanisms a real one goes through, so that the
// guide cannot rot unnoticed:
//
//  1. its folder, providers/throwaway: the provider and its Registration
//     (here, throwawayProvider and throwawayRegistration);
//  2. its fake, providers/throwaway/throwawaytest.Fake (here, throwawayFake);
//  3. one line in Registrations;
//  4. make generate: the API's enum, documentation and admission rules,
//     and the fakes' list, name it;
//
// and the checks a real provider's tests and this package's then run: the
// conformance suite, its client against its fake, the registry.
func TestAddingAProvider(t *testing.T) {
	const throwawayPackage = "github.com/tokensync/tokensync/providers/throwaway"

	// 3. One line in Registrations.
	regs := append(Registrations(), throwawayRegistration)
	registry, err := providers.NewRegistry(providers.Options{}, regs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := registry["throwaway"].Provider.(providers.Validator); !ok {
		t.Error("throwaway is registered without its Validate")
	}

	// 4. make generate, from the list with throwaway's line.
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
	withThrowaway := append(provs, providergen.Provider{Registration: throwawayRegistration, Package: throwawayPackage})
	api, err := providergen.API(withThrowaway, blocks)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range withThrowaway {
		names = append(names, p.Name)
	}
	for _, want := range []string{
		"+kubebuilder:validation:Enum=" + strings.Join(names, ";") + "\n",
		"//   - throwaway: Throwaway Sessions. spec.endpoint (required) is its base URL.",
		" and throwaway (they have no public default); set it to the provider's base URL",
	} {
		if !strings.Contains(string(api), want) {
			t.Errorf("the API generated with throwaway lacks %q:\n%s", want, api)
		}
	}
	fakes, err := providergen.Fakes(withThrowaway)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"` + throwawayPackage + `/throwawaytest"`, "\t\tthrowawaytest.Fake,\n"} {
		if !strings.Contains(string(fakes), want) {
			t.Errorf("the fakes' list generated with throwaway lacks %q:\n%s", want, fakes)
		}
	}
	// A provider its TokenRequest configures needs its block in the API
	// first; the generator says where.
	configured := throwawayRegistration
	configured.Name, configured.SettingsHint = "throwawayconf", "its settings"
	configured.New = func(providers.Options) providers.Provider { return configurableThrowaway{} }
	_, err = providergen.API(append(provs, providergen.Provider{Registration: configured, Package: throwawayPackage + "conf"}), blocks)
	if err == nil || !strings.Contains(err.Error(), "tokenrequest_types.go") {
		t.Errorf("a configured provider without a settings block: %v", err)
	}

	// What the provider's own tests run (1).
	t.Run("conformance", func(t *testing.T) {
		conformance.RunUndocumented(t, func(o providers.Options) providers.Provider { return newThrowaway(o) }, http.StatusOK,
			providers.Credentials{"apiKey": []byte(conformance.SentinelSecret)})
	})
	t.Run("rejections", func(t *testing.T) {
		conformance.RunRejections(t, func(o providers.Options) providers.Provider { return newThrowaway(o) },
			providers.Credentials{"apiKey": []byte(conformance.SentinelSecret)}, conformance.Rejections{
				Documented:   map[string]fake.Answer{"401": fake.JSONAnswer(http.StatusUnauthorized, `{"message": "unknown API key"}`)},
				Undocumented: map[string]fake.Answer{"403": fake.JSONAnswer(http.StatusForbidden, `{"error": "forbidden"}`)},
			})
	})
	// What TestFakes runs for every provider (2): the fake served beside
	// the built-in ones.
	t.Run("fake", func(t *testing.T) { conformance.RunFake(t, throwawayRegistration, throwawayFake) })
	t.Run("served", func(t *testing.T) {
		s := providertest.Start(t, providertest.WithFakes(throwawayFake))
		token, err := registry["throwaway"].Provider.Login(context.Background(), throwawayFake.Endpoint(s.URL()), providers.Credentials{"apiKey": []byte("k-1")})
		if err != nil || token.Value != s.LastToken("throwaway") || s.LoginsFor("throwaway", "k-1") != 1 || s.Logins(providertest.AML) != 0 {
			t.Errorf("Login = %v, %v", token, err)
		}
	})
}

// throwaway's documentation, for this test: POST {endpoint}/throwaway/v1/sessions with
// {"apiKey"} answers 200 {"session", "ttl"}, ttl in seconds; a wrong key
// 401 {"message"}.
const (
	throwawayTitle = "Throwaway Sessions"
	throwawayPath  = "/throwaway/v1/sessions"
)

var throwawayRegistration = providers.Registration{
	Name:           "throwaway",
	Title:          throwawayTitle,
	CredentialKeys: []providers.CredentialKey{{Name: "apiKey", Description: "the API key"}},
	New:            func(o providers.Options) providers.Provider { return newThrowaway(o) },
}

type throwawayProvider struct {
	client *http.Client
	now    func() time.Time
}

func newThrowaway(o providers.Options) *throwawayProvider {
	return &throwawayProvider{client: login.HTTPClient(o), now: login.Clock(o)}
}

func (p *throwawayProvider) Validate(creds providers.Credentials) error {
	return login.RequireKeys(creds, "apiKey")
}

func (p *throwawayProvider) LoginURL(endpoint string) (string, error) {
	return login.JoinURL(endpoint, throwawayPath)
}

func (p *throwawayProvider) Login(ctx context.Context, endpoint string, creds providers.Credentials) (*providers.Token, error) {
	if err := p.Validate(creds); err != nil {
		return nil, err
	}
	url, err := p.LoginURL(endpoint)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"apiKey": string(creds["apiKey"])})
	obtainedAt := p.now()
	reply, err := login.SendJSON(ctx, p.client, p.now, login.JSONRequest{Provider: throwawayTitle, Method: http.MethodPost, URL: url, Body: body})
	if err != nil {
		return nil, err
	}
	if reply.StatusCode >= 300 {
		// Only the documented rejection counts toward the lockout: any
		// other 401 or 403 is RequestBlocked (login.ClientError).
		var rejection struct {
			Message *string `json:"message"`
		}
		if reply.StatusCode == http.StatusUnauthorized && json.Unmarshal(reply.Body, &rejection) == nil && rejection.Message != nil {
			return nil, providers.Errorf(providers.AuthenticationFailed, "%s rejected the API key (HTTP 401): check apiKey in the credentials Secret", throwawayTitle)
		}
		return nil, login.ClientError(throwawayTitle, reply, "apiKey")
	}
	var answer struct {
		Session *string          `json:"session"`
		TTL     *float64         `json:"ttl"`
		Error   *json.RawMessage `json:"error"`
	}
	switch {
	case json.Unmarshal(reply.Body, &answer) != nil:
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with a body that is not the documented JSON object", throwawayTitle, reply.StatusCode)
	case answer.Error != nil:
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with an error", throwawayTitle, reply.StatusCode)
	case answer.Session == nil || answer.TTL == nil || *answer.TTL <= 0 || *answer.TTL > 1e9:
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d without a session and a positive ttl", throwawayTitle, reply.StatusCode)
	}
	if err := login.CheckTokenValue(throwawayTitle, *answer.Session); err != nil {
		return nil, err
	}
	expiresAt := obtainedAt.Add(time.Duration(*answer.TTL * float64(time.Second)))
	if err := expiry.Check(throwawayTitle, p.now(), expiresAt); err != nil {
		return nil, err
	}
	return &providers.Token{Value: *answer.Session, ObtainedAt: obtainedAt, ExpiresAt: expiresAt}, nil
}

type configurableThrowaway struct{ *throwawayProvider }

func (configurableThrowaway) WithSettings([]byte) (providers.Provider, error) {
	return nil, errors.New("unused")
}

// throwawayFake is throwaway's fake, written from its documentation above.
var throwawayFake = fake.Provider{
	Name:          "throwaway",
	Method:        http.MethodPost,
	Path:          throwawayPath,
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
