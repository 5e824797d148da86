package oauth2

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// A client id and secret with the characters RFC 6749 §2.3.1 makes a
// client form-encode before Basic authentication.
const (
	clientID     = "tokensync:client/1"
	clientSecret = "s3cr+t/with%chars=="
)

var creds = providers.Credentials{KeyClientID: []byte(clientID), KeyClientSecret: []byte(clientSecret)}

var sentinelCreds = providers.Credentials{
	KeyClientID:     []byte(conformance.SentinelUser),
	KeyClientSecret: []byte(conformance.SentinelSecret),
}

// tokenServer is a token endpoint written from RFC 6749 §4.4, §2.3.1 and
// §5: it authenticates the client the way it is told (Basic, with the id
// and secret form-decoded, or client_id and client_secret in the form),
// refuses both at once, and answers as §5.1 and §5.2 say.
type tokenServer struct {
	t        *testing.T
	auth     string                                       // ClientAuthBasic or ClientAuthPost
	answer   func(w http.ResponseWriter, form url.Values) // the success answer; nil: an opaque token for an hour
	lastForm url.Values
	requests int
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests++
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		s.t.Errorf("request %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}
	if err := r.ParseForm(); err != nil {
		rfcError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	s.lastForm = r.PostForm
	if r.URL.RawQuery != "" {
		s.t.Errorf("parameters sent in the query: %q", r.URL.RawQuery)
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		rfcError(w, http.StatusBadRequest, "unsupported_grant_type", "")
		return
	}
	id, secret, basic := r.BasicAuth()
	_, inForm := r.PostForm["client_secret"]
	switch {
	case basic && inForm:
		rfcError(w, http.StatusBadRequest, "invalid_request", "more than one client authentication method")
		return
	case s.auth == ClientAuthBasic && basic:
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			rfcError(w, http.StatusBadRequest, "invalid_request", "")
			return
		}
	case s.auth == ClientAuthPost && inForm:
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	default:
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		rfcError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	if id != clientID || secret != clientSecret {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		rfcError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	if s.answer != nil {
		s.answer(w, r.PostForm)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": "opaque-token-1", "token_type": "Bearer", "expires_in": 3600})
}

func rfcError(w http.ResponseWriter, status int, code, description string) {
	body := map[string]any{"error": code}
	if description != "" {
		body["error_description"] = description
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func start(t *testing.T, s *tokenServer) string {
	t.Helper()
	s.t = t
	if s.auth == "" {
		s.auth = ClientAuthBasic
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL + "/oauth/token"
}

// configured returns a provider with spec.oauth2 given as JSON.
func configured(t *testing.T, opts providers.Options, settingsJSON string) providers.Provider {
	t.Helper()
	p, err := New(opts).WithSettings([]byte(settingsJSON))
	if err != nil {
		t.Fatalf("WithSettings(%s): %v", settingsJSON, err)
	}
	return p
}

func makeJWT(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + ".c2lnbmF0dXJl"
}

func TestLoginClientAuth(t *testing.T) {
	for _, auth := range []string{ClientAuthBasic, ClientAuthPost} {
		t.Run(auth, func(t *testing.T) {
			s := &tokenServer{auth: auth, answer: func(w http.ResponseWriter, form url.Values) {
				writeJSON(w, http.StatusOK, map[string]any{
					"access_token": "2YotnFZFEjr1zCsicMWpAA", "token_type": "Bearer", "expires_in": 3600,
					"scope": form.Get("scope"),
				})
			}}
			endpoint := start(t, s)
			p := configured(t, providers.Options{Now: conformance.Clock},
				`{"clientAuth": "`+auth+`", "scopes": ["api.read", "api.write"], "parameters": {"audience": "https://api.example.com"}}`)
			token, err := p.Login(context.Background(), endpoint, creds)
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			want := providers.Token{
				Value: "2YotnFZFEjr1zCsicMWpAA", ObtainedAt: conformance.Now, ExpiresAt: conformance.Now.Add(time.Hour),
				Extra: map[string]string{SecretKeyTokenType: "Bearer", SecretKeyScope: "api.read api.write"},
			}
			if fmt.Sprint(*token) != fmt.Sprint(want) {
				t.Errorf("token = %+v, want %+v", *token, want)
			}
			f := s.lastForm
			if f.Get("scope") != "api.read api.write" || f.Get("audience") != "https://api.example.com" {
				t.Errorf("form = %v", f)
			}
			if _, sent := f["client_secret"]; sent != (auth == ClientAuthPost) {
				t.Errorf("client_secret in the form: %v, with client auth %s", sent, auth)
			}
		})
	}
}

func TestLoginDefaults(t *testing.T) {
	s := &tokenServer{}
	endpoint := start(t, s)
	// No settings at all: Basic, no scope, no other parameter.
	token, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), endpoint, creds)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if token.Value != "opaque-token-1" || token.Extra[SecretKeyScope] != "" {
		t.Errorf("token = %+v", *token)
	}
	if len(s.lastForm) != 1 {
		t.Errorf("form = %v, want grant_type only", s.lastForm)
	}
	// The token URL is used as given.
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		writeJSON(w, 200, map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 60})
	}))
	defer srv.Close()
	if _, err := New(providers.Options{}).Login(context.Background(), srv.URL+"/realms/x/token/", creds); err != nil || path != "/realms/x/token/" {
		t.Errorf("Login: %v, path %q", err, path)
	}
}

func TestLoginExpiry(t *testing.T) {
	now := conformance.Now
	jwtIatExp := makeJWT(fmt.Sprintf(`{"sub":"svc","iat":%d,"exp":%d}`, now.Unix()-3600, now.Unix()-3600+900))
	jwtExpOnly := makeJWT(fmt.Sprintf(`{"sub":"svc","exp":%d}`, now.Unix()+600))
	jwtNoExp := makeJWT(`{"sub":"svc"}`)
	for _, tc := range []struct {
		name     string
		answer   map[string]any
		settings string
		want     time.Duration // from now
		err      string        // part of an InvalidResponse message
	}{
		{name: "expires_in", answer: map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 300}, want: 5 * time.Minute},
		{name: "expires_in as a string", answer: map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": "120"}, want: 2 * time.Minute},
		{name: "expires_in wins over a JWT's exp", answer: map[string]any{"access_token": jwtIatExp, "token_type": "Bearer", "expires_in": 60}, want: time.Minute},
		{name: "JWT iat and exp: exp-iat from now", answer: map[string]any{"access_token": jwtIatExp, "token_type": "Bearer"}, want: 15 * time.Minute},
		{name: "JWT exp only", answer: map[string]any{"access_token": jwtExpOnly, "token_type": "Bearer"}, want: 10 * time.Minute},
		{name: "JWT wins over defaultLifetime", answer: map[string]any{"access_token": jwtExpOnly, "token_type": "Bearer"}, settings: `{"defaultLifetime": "1h0m0s"}`, want: 10 * time.Minute},
		{name: "opaque token, defaultLifetime", answer: map[string]any{"access_token": "t", "token_type": "Bearer"}, settings: `{"defaultLifetime": "45m0s"}`, want: 45 * time.Minute},
		{name: "JWT without exp, defaultLifetime", answer: map[string]any{"access_token": jwtNoExp, "token_type": "Bearer"}, settings: `{"defaultLifetime": "5m"}`, want: 5 * time.Minute},
		{name: "opaque token, no expiry at all", answer: map[string]any{"access_token": "t", "token_type": "Bearer"}, err: "set spec.oauth2.defaultLifetime"},
		{name: "expires_in zero", answer: map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 0}, err: "already expired"},
		{name: "expires_in over a year", answer: map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 400 * 24 * 3600}, err: "more than a year"},
		{name: "expires_in not a number", answer: map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": "soon"}, err: "not an OAuth2 token response"},
		{name: "no access_token", answer: map[string]any{"token_type": "Bearer", "expires_in": 60}, err: "not an OAuth2 token response"},
		{name: "access_token with a newline", answer: map[string]any{"access_token": "a\nb", "token_type": "Bearer", "expires_in": 60}, err: "control characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			endpoint := start(t, &tokenServer{answer: func(w http.ResponseWriter, _ url.Values) { writeJSON(w, 200, tc.answer) }})
			settings := tc.settings
			if settings == "" {
				settings = "{}"
			}
			token, err := configured(t, providers.Options{Now: conformance.Clock}, settings).Login(context.Background(), endpoint, creds)
			if tc.err != "" {
				pe := conformance.RequireError(t, err, providers.InvalidResponse)
				if !strings.Contains(pe.Message, tc.err) || !strings.Contains(pe.Message, "HTTP 200") && !strings.Contains(pe.Message, "expired") && !strings.Contains(pe.Message, "year") && !strings.Contains(pe.Message, "control") {
					t.Errorf("message %q, want %q", pe.Message, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if !token.ExpiresAt.Equal(now.Add(tc.want)) {
				t.Errorf("expires at %s, want now + %s", token.ExpiresAt, tc.want)
			}
		})
	}
}

// TestLoginFormAnswer: some servers answer with a form; the library reads it.
func TestLoginFormAnswer(t *testing.T) {
	endpoint := start(t, &tokenServer{answer: func(w http.ResponseWriter, _ url.Values) {
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		_, _ = io.WriteString(w, "access_token=form-token&token_type=bearer&expires_in=600&scope=repo")
	}})
	token, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), endpoint, creds)
	if err != nil {
		t.Fatal(err)
	}
	if token.Value != "form-token" || !token.ExpiresAt.Equal(conformance.Now.Add(10*time.Minute)) ||
		token.Extra[SecretKeyTokenType] != "bearer" || token.Extra[SecretKeyScope] != "repo" {
		t.Errorf("token = %+v", *token)
	}
}

// TestErrorResponses: every RFC 6749 §5.2 error code, and the answers
// without one.
func TestErrorResponses(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
		kind        providers.ErrorKind
		contains    []string
		absent      []string
	}{
		{"invalid_request", 400, "", `{"error":"invalid_request","error_description":"Missing parameter"}`, providers.InvalidCredentials,
			[]string{"HTTP 400, error invalid_request)", "spec.oauth2.parameters"}, []string{"Missing"}},
		{"invalid_client", 401, "", `{"error":"invalid_client","error_description":"Client authentication failed"}`, providers.AuthenticationFailed,
			[]string{"HTTP 401, error invalid_client", "clientId and clientSecret"}, nil},
		{"invalid_grant", 400, "", `{"error":"invalid_grant"}`, providers.AuthenticationFailed, []string{"error invalid_grant"}, nil},
		{"unauthorized_client", 400, "", `{"error":"unauthorized_client","error_description":"client_credentials_not_allowed"}`, providers.AuthenticationFailed,
			[]string{"error unauthorized_client: client_credentials_not_allowed", "client credentials grant"}, nil},
		{"unsupported_grant_type", 400, "", `{"error":"unsupported_grant_type"}`, providers.InvalidCredentials, []string{"error unsupported_grant_type"}, nil},
		{"invalid_scope", 400, "", `{"error":"invalid_scope","error_description":"scope_not_allowed"}`, providers.InvalidCredentials,
			[]string{"refused the requested scope (HTTP 400, error invalid_scope: scope_not_allowed)", "spec.oauth2.scopes"}, nil},
		{"unknown code", 400, "", `{"error":"temporarily_confused"}`, providers.InvalidCredentials, []string{"error temporarily_confused"}, nil},
		{"code not an identifier", 400, "", `{"error":"<b>bad</b> request"}`, providers.InvalidCredentials, []string{"(HTTP 400)"}, []string{"bad"}},
		{"401 another code", 401, "", `{"error":"access_denied"}`, providers.AuthenticationFailed, []string{"HTTP 401, error access_denied"}, nil},
		{"401 form-encoded invalid_client", 401, "application/x-www-form-urlencoded", `error=invalid_client`, providers.AuthenticationFailed,
			[]string{"HTTP 401, error invalid_client"}, nil},
		{"401 without a body", 401, "", ``, providers.RequestBlocked, []string{"HTTP 401 with an empty answer"}, nil},
		{"403 HTML", 403, "text/html", `<html>Forbidden</html>`, providers.RequestBlocked, []string{"HTTP 403 with a text/html answer"}, []string{"Forbidden"}},
		{"403 text", 403, "text/plain", `Forbidden`, providers.RequestBlocked, []string{"HTTP 403 with a text/plain answer"}, []string{"Forbidden"}},
		{"401 JSON without an error code", 401, "", `{"message":"Unauthorized"}`, providers.RequestBlocked, []string{"HTTP 401 with an application/json answer"}, nil},
		{"404", 404, "", `{"message":"not found"}`, providers.InvalidCredentials, []string{"HTTP 404", "spec.endpoint"}, nil},
		{"form-encoded error", 400, "application/x-www-form-urlencoded", `error=invalid_scope&error_description=nope`, providers.InvalidCredentials,
			[]string{"error invalid_scope: nope"}, nil},
		{"200 with an error", 200, "", `{"error":"invalid_client"}`, providers.AuthenticationFailed, []string{"HTTP 200, error invalid_client"}, nil},
		{"429", 429, "", `{"error":"slow_down"}`, providers.ProviderUnavailable, []string{"HTTP 429"}, nil},
		{"500", 500, "", `{"error":"server_error"}`, providers.ProviderUnavailable, []string{"HTTP 500"}, nil},
		{"503", 503, "", `{"error":"temporarily_unavailable"}`, providers.ProviderUnavailable, []string{"HTTP 503"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ct := tc.contentType
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			_, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, creds)
			pe := conformance.RequireError(t, err, tc.kind)
			for _, s := range tc.contains {
				if !strings.Contains(pe.Message, s) {
					t.Errorf("message %q does not contain %q", pe.Message, s)
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(pe.Message, s) {
					t.Errorf("message %q quotes %q", pe.Message, s)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "90")
		rfcError(w, http.StatusTooManyRequests, "slow_down", "")
	}))
	defer srv.Close()
	_, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, creds)
	if pe := conformance.RequireError(t, err, providers.ProviderUnavailable); pe.RetryAfter != 90*time.Second {
		t.Errorf("RetryAfter = %s", pe.RetryAfter)
	}
}

func TestValidate(t *testing.T) {
	p := New(providers.Options{})
	for _, c := range []providers.Credentials{
		{KeyClientID: []byte("id")},
		{KeyClientSecret: []byte("secret")},
		{KeyClientID: []byte(" "), KeyClientSecret: []byte("secret")},
	} {
		if err := p.Validate(c); providers.KindOf(err) != providers.InvalidCredentials {
			t.Errorf("Validate(%v) = %v", c, err)
		}
	}
	if err := p.Validate(creds); err != nil {
		t.Errorf("Validate = %v", err)
	}
	// Login checks them before sending anything.
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("a request was sent") }))
	defer srv.Close()
	_, err := p.Login(context.Background(), srv.URL, providers.Credentials{KeyClientID: []byte("id")})
	conformance.RequireError(t, err, providers.InvalidCredentials)
}

func TestWithSettings(t *testing.T) {
	for _, bad := range []struct{ json, want string }{
		{`{"clientAuth": "jwt"}`, "clientAuth must be basic or post"},
		{`{"scopes": ["a b"]}`, "scope tokens"},
		{`{"scopes": [""]}`, "scope tokens"},
		{`{"parameters": {"grant_type": "password"}}`, "must not set grant_type"},
		{`{"parameters": {"scope": "x"}}`, "must not set scope"},
		{`{"parameters": {"client_secret": "x"}}`, "must not set client_secret"},
		{`{"scope": ["a"]}`, `unknown field "scope"`},
		{`{"defaultLifetime": "a while"}`, "spec.oauth2 cannot be read"},
	} {
		_, err := New(providers.Options{}).WithSettings([]byte(bad.json))
		if providers.KindOf(err) != providers.InvalidTemplate || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("WithSettings(%s) = %v, want InvalidTemplate %q", bad.json, err, bad.want)
		}
	}
	for _, good := range []string{``, `null`, `{}`, `{"clientAuth": "basic", "scopes": ["openid", "https://graph.microsoft.com/.default"], "parameters": {"resource": "x"}, "defaultLifetime": "1h"}`} {
		if _, err := New(providers.Options{}).WithSettings([]byte(good)); err != nil {
			t.Errorf("WithSettings(%s) = %v", good, err)
		}
	}
}

// TestLoginCountsFromStart: expires_in counts from before the request.
func TestLoginCountsFromStart(t *testing.T) {
	clock := conformance.NewManualClock(conformance.Now)
	endpoint := start(t, &tokenServer{answer: func(w http.ResponseWriter, _ url.Values) {
		clock.Advance(30 * time.Second) // a slow answer
		writeJSON(w, 200, map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 3600})
	}})
	token, err := New(providers.Options{Now: clock.Now}).Login(context.Background(), endpoint, creds)
	if err != nil {
		t.Fatal(err)
	}
	if !token.ObtainedAt.Equal(conformance.Now) || !token.ExpiresAt.Equal(conformance.Now.Add(time.Hour)) {
		t.Errorf("token obtained %s, expires %s", token.ObtainedAt, token.ExpiresAt)
	}
}

func TestUndocumented(t *testing.T) {
	conformance.RunUndocumented(t, func(o providers.Options) providers.Provider { return New(o) }, http.StatusOK, sentinelCreds)
}

// TestRejections: RFC 6749's invalid_client, unauthorized_client and
// invalid_grant are the endpoint's rejection, in JSON or a form; a 401 or
// 403 without an error code is RequestBlocked.
func TestRejections(t *testing.T) {
	documented := map[string]fake.Answer{
		"401 invalid_client form": {Status: 401, ContentType: "application/x-www-form-urlencoded", Body: "error=invalid_client"},
		"200 invalid_client":      fake.JSONAnswer(200, `{"error": "invalid_client"}`),
	}
	for _, status := range []int{400, 401, 403} {
		for _, code := range []string{"invalid_client", "unauthorized_client", "invalid_grant"} {
			documented[strconv.Itoa(status)+" "+code] = fake.JSONAnswer(status, `{"error": "`+code+`", "error_description": "no such client `+conformance.SentinelBody+`"}`)
		}
	}
	conformance.RunRejections(t, func(o providers.Options) providers.Provider { return New(o) }, sentinelCreds, conformance.Rejections{
		Documented: documented,
		Undocumented: map[string]fake.Answer{
			"gateway 403":        conformance.GatewayForbidden(403),
			"error not a string": fake.JSONAnswer(401, `{"error": {"code": "invalid_client"}}`),
			"empty error":        fake.JSONAnswer(401, `{"error": ""}`),
		},
	})
}

// TestErrorsNeverLeak feeds sentinels through every error path: as error
// codes, descriptions and URIs, echoed credentials, tokens in failed answers.
func TestErrorsNeverLeak(t *testing.T) {
	// Identifiers are quoted by the rule (see quotable), so the sentinels
	// come as text with spaces, or echoing a credential.
	s := conformance.SentinelUser + " " + conformance.SentinelSecret + " " + conformance.SentinelBody
	sentinelAnswers := []struct {
		status int
		body   string
	}{
		{400, `{"error":"` + s + `","error_description":"` + s + `"}`},
		{400, `{"error":"invalid_request","error_description":"` + s + `","error_uri":"https://x/` + conformance.SentinelBody + `"}`},
		{401, `{"error":"` + conformance.SentinelSecret + `"}`},
		{401, `{"error":"x-` + conformance.SentinelUser + `"}`},
		{401, `{"error":"invalid_client","error_description":"bad-` + conformance.SentinelUser + `"}`},
		{400, `{"error":"invalid_scope","error_description":"` + conformance.SentinelSecret + `"}`},
		{400, `error=` + url.QueryEscape(s) + `&error_description=` + url.QueryEscape(s)},
		{200, `{"error":"invalid_grant","access_token":"` + conformance.SentinelToken + `"}`},
		{200, `{"access_token":"` + conformance.SentinelToken + `","token_type":"Bearer"}`},
		{200, `{"access_token":"` + conformance.SentinelToken + `","token_type":"Bearer","expires_in":"` + conformance.SentinelBody + `"}`},
		{200, `{"access_token":"` + conformance.SentinelToken + "\n" + `","token_type":"Bearer","expires_in":60}`},
		{200, `{"access_token":"` + conformance.SentinelToken + `","token_type":"Bearer","expires_in":-5}`},
		{200, `<html>` + s + `</html>`},
		{500, `{"error":"` + conformance.SentinelBody + `"}`},
	}
	for i, a := range sentinelAnswers {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(a.status)
			_, _ = io.WriteString(w, a.body)
		}))
		_, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, sentinelCreds)
		srv.Close()
		if err == nil {
			t.Errorf("answer %d: no error", i)
			continue
		}
		conformance.RequireNoSentinel(t, err.Error())
	}
}

func TestRegistration(t *testing.T) {
	if Registration.Name != "oauth2" || Registration.DefaultEndpoint != "" || Registration.CredentialKeyNames() != "clientId, clientSecret" {
		t.Errorf("Registration = %+v", Registration)
	}
	used := Registration.UsedCredentials(providers.Credentials{KeyClientID: []byte("a"), KeyClientSecret: []byte("b"), "note": []byte("c")})
	if len(used) != 2 {
		t.Errorf("UsedCredentials = %v", used)
	}
	if _, ok := Registration.New(providers.Options{}).(providers.Configurable); !ok {
		t.Error("the provider is not Configurable")
	}
	if login.DefaultTimeout <= 0 {
		t.Error("no default timeout")
	}
}
