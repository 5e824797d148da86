package httplogin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/aml"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/partner"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// The AML Watcher and partner API logins written as spec.http, as the
// README gives them.
const (
	amlSettings = `{
		"method": "POST", "path": "/api/get-access-token",
		"headers": {"Accept": "application/json"},
		"body": {"format": "json", "fields": {"email": "{{ .email }}", "password": "{{ .password }}"}},
		"token": {"jsonPointer": "/data/access_token"},
		"expiry": {"fromJWT": true, "lifetime": "3h0m0s"},
		"success": {"jsonPointer": "/status", "equals": "SUCCESS"}
	}`
	partnerSettings = `{
		"path": "/login",
		"body": {"fields": {"accessKey": "{{ .accessKey }}", "secret": "{{ .secret }}"}},
		"token": {"rawBody": true},
		"expiry": {"fromJWT": true}
	}`
)

var (
	amlCreds     = providers.Credentials{"email": []byte("ops@example.com"), "password": []byte("correct-horse")}
	partnerCreds = providers.Credentials{"accessKey": []byte("986d8167a9b9a15e37db4ab4ad50877b01347a94"), "secret": []byte("79bPqahzbeYuIgyod1GBjsBy38wN7KuBBNNmN/emwjFCuAfq")}
)

func configured(t testing.TB, opts providers.Options, settingsJSON string) *Provider {
	t.Helper()
	p, err := New(opts).WithSettings([]byte(settingsJSON))
	if err != nil {
		t.Fatalf("WithSettings: %v", err)
	}
	return p.(*Provider)
}

// TestBuiltInLoginsAsHTTP: against the fake providers, the http login
// written like AML Watcher's and the partner API's gets what the built-in
// providers get: the token the fake issued, expiring at the same time, and
// the same kind of failure for wrong credentials.
func TestBuiltInLoginsAsHTTP(t *testing.T) {
	for _, tc := range []struct {
		provider string
		settings string
		creds    providers.Credentials
		builtIn  providers.Provider
		lifetime time.Duration
		wrong    providers.Credentials
		wrongIs  providers.ErrorKind
	}{
		{providertest.AML, amlSettings, amlCreds, aml.New(providers.Options{Now: conformance.Clock}), 3 * time.Hour,
			providers.Credentials{"email": []byte("ops@example.com"), "password": []byte("wrong-password")}, providers.AuthenticationFailed},
		{providertest.AML, amlSettings, amlCreds, aml.New(providers.Options{Now: conformance.Clock}), 20 * time.Minute,
			providers.Credentials{"email": []byte(" "), "password": []byte("correct-horse")}, providers.InvalidCredentials},
		{providertest.Partner, partnerSettings, partnerCreds, partner.New(providers.Options{Now: conformance.Clock}), time.Hour,
			providers.Credentials{"accessKey": partnerCreds["accessKey"], "secret": []byte("wrong")}, providers.AuthenticationFailed},
		{providertest.Partner, partnerSettings, partnerCreds, partner.New(providers.Options{Now: conformance.Clock}), 7 * time.Minute,
			providers.Credentials{"accessKey": partnerCreds["accessKey"], "secret": []byte(" ")}, providers.InvalidCredentials},
	} {
		t.Run(fmt.Sprintf("%s %s", tc.provider, tc.lifetime), func(t *testing.T) {
			valid := map[string]string{}
			for k, v := range tc.creds {
				valid[k] = string(v)
			}
			fake := providertest.Start(t, providertest.WithClock(conformance.Clock),
				providertest.WithValid(tc.provider, valid), providertest.WithLifetime(tc.provider, tc.lifetime))
			httpLogin := configured(t, providers.Options{Now: conformance.Clock}, tc.settings)

			want, err := tc.builtIn.Login(context.Background(), fake.URL(), tc.creds)
			if err != nil {
				t.Fatalf("built-in: %v", err)
			}
			got, err := httpLogin.Login(context.Background(), fake.URL(), tc.creds)
			if err != nil {
				t.Fatalf("http: %v", err)
			}
			if got.Value != fake.LastToken(tc.provider) || want.Value == got.Value {
				t.Errorf("http token is not the one the fake issued last")
			}
			if !got.ExpiresAt.Equal(want.ExpiresAt) || !got.ObtainedAt.Equal(want.ObtainedAt) || !got.ExpiresAt.Equal(conformance.Now.Add(tc.lifetime)) {
				t.Errorf("http: obtained %s, expires %s; built-in: obtained %s, expires %s", got.ObtainedAt, got.ExpiresAt, want.ObtainedAt, want.ExpiresAt)
			}
			if fake.Logins(tc.provider) != 2 {
				t.Errorf("fake logins = %d, want 2", fake.Logins(tc.provider))
			}

			_, errBuiltIn := tc.builtIn.Login(context.Background(), fake.URL(), tc.wrong)
			_, errHTTP := httpLogin.Login(context.Background(), fake.URL(), tc.wrong)
			if providers.KindOf(errBuiltIn) != tc.wrongIs || providers.KindOf(errHTTP) != tc.wrongIs {
				t.Errorf("wrong credentials: built-in %v, http %v; want %s", errBuiltIn, errHTTP, tc.wrongIs)
			}
		})
	}
}

// TestSuccessRule: AML Watcher answers some failed logins with HTTP 200
// and status FAIL; the success rule makes that a rejected login.
func TestSuccessRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		kind providers.ErrorKind // "" for a token
	}{
		{"SUCCESS", `{"error": false, "status": "SUCCESS", "data": {"access_token": "tok-1"}}`, ""},
		{"200 FAIL", `{"error": "Invalid email or password.", "status": "FAIL", "data": []}`, providers.AuthenticationFailed},
		{"200 FAIL with a token", `{"error": "x", "status": "FAIL", "data": {"access_token": "tok-1"}}`, providers.AuthenticationFailed},
		{"200 without status", `{"data": {"access_token": "tok-1"}}`, providers.AuthenticationFailed},
		{"200 not JSON", `<html>ok</html>`, providers.InvalidResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := answer(t, 200, nil, tc.body)
			p := configured(t, providers.Options{Now: conformance.Clock}, amlSettings)
			_, err := p.Login(context.Background(), srv.URL, amlCreds)
			builtIn, errBuiltIn := aml.New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, amlCreds)
			if tc.kind == "" {
				if err != nil || errBuiltIn != nil || builtIn.Value != "tok-1" {
					t.Fatalf("http: %v; built-in: %v", err, errBuiltIn)
				}
				return
			}
			pe := conformance.RequireError(t, err, tc.kind)
			if tc.kind == providers.AuthenticationFailed && !strings.Contains(pe.Message, `/status is not "SUCCESS"`) {
				t.Errorf("message %q does not name the rule", pe.Message)
			}
			if tc.name == "200 FAIL" && providers.KindOf(errBuiltIn) != providers.AuthenticationFailed {
				t.Errorf("the built-in provider says %v", errBuiltIn)
			}
		})
	}
	// A non-string value compares by its JSON text.
	srv := answer(t, 200, nil, `{"success": true, "token": "t"}`)
	p := configured(t, providers.Options{}, `{"token": {"jsonPointer": "/token"}, "expiry": {"lifetime": "1h"}, "success": {"jsonPointer": "/success", "equals": "true"}}`)
	if _, err := p.Login(context.Background(), srv.URL, nil); err != nil {
		t.Errorf("success true: %v", err)
	}
}

// answer starts a server answering status, headers and body to any request.
func answer(t *testing.T, status int, header map[string]string, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func makeJWT(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + ".c2ln"
}

func TestTokenModes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		token  string // spec.http.token
		header map[string]string
		body   string
		want   string
		err    string // part of an InvalidResponse message
	}{
		{"jsonPointer", `{"jsonPointer": "/data/access_token"}`, nil, `{"data": {"access_token": "abc"}}`, "abc", ""},
		{"jsonPointer into an array", `{"jsonPointer": "/data/0/access_token"}`, nil, `{"data": [{"access_token": "abc"}]}`, "abc", ""},
		{"jsonPointer with escapes", `{"jsonPointer": "/a~1b/m~0n"}`, nil, `{"a/b": {"m~n": "abc"}}`, "abc", ""},
		{"jsonPointer to a number", `{"jsonPointer": "/token"}`, nil, `{"token": 42}`, "", "without a string at /token"},
		{"jsonPointer missing", `{"jsonPointer": "/token"}`, nil, `{"access_token": "x"}`, "", "without a string at /token"},
		{"jsonPointer, body not JSON", `{"jsonPointer": "/token"}`, nil, `token=abc`, "", "not JSON"},
		{"rawBody", `{"rawBody": true}`, nil, " eyJ.abc.def\n", "eyJ.abc.def", ""},
		{"rawBody, a JSON string", `{"rawBody": true}`, nil, `"abc"`, "abc", ""},
		{"rawBody, HTML", `{"rawBody": true}`, nil, `<html>abc</html>`, "", "not a bare token"},
		{"rawBody, JSON object", `{"rawBody": true}`, nil, `{"token": "abc"}`, "", "not a bare token"},
		{"rawBody, text", `{"rawBody": true}`, nil, `login ok`, "", "not a bare token"},
		{"rawBody, empty", `{"rawBody": true}`, nil, ``, "", "without a token"},
		{"header", `{"header": "X-Auth-Token"}`, map[string]string{"X-Auth-Token": "abc"}, `{}`, "abc", ""},
		{"header missing", `{"header": "x-auth-token"}`, nil, `{}`, "", "without a X-Auth-Token header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := answer(t, 200, tc.header, tc.body)
			p := configured(t, providers.Options{Now: conformance.Clock}, `{"token": `+tc.token+`, "expiry": {"lifetime": "1h"}}`)
			token, err := p.Login(context.Background(), srv.URL, nil)
			if tc.err != "" {
				pe := conformance.RequireError(t, err, providers.InvalidResponse)
				if !strings.Contains(pe.Message, tc.err) {
					t.Errorf("message %q, want %q", pe.Message, tc.err)
				}
				return
			}
			if err != nil || token.Value != tc.want {
				t.Fatalf("Login = %+v, %v; want %q", token, err, tc.want)
			}
		})
	}
}

func TestExpiryModes(t *testing.T) {
	now := conformance.Now
	jwtIn := func(iat, exp time.Duration) string {
		return makeJWT(fmt.Sprintf(`{"iat": %d, "exp": %d}`, now.Add(iat).Unix(), now.Add(exp).Unix()))
	}
	for _, tc := range []struct {
		name   string
		expiry string
		body   map[string]any
		want   time.Duration // from now
		err    string
	}{
		{"fromJWT: exp - iat from now", `{"fromJWT": true}`, map[string]any{"token": jwtIn(-2*time.Hour, -time.Hour)}, time.Hour, ""},
		{"fromJWT: exp only", `{"fromJWT": true}`, map[string]any{"token": makeJWT(fmt.Sprintf(`{"exp": %d}`, now.Add(20*time.Minute).Unix()))}, 20 * time.Minute, ""},
		{"fromJWT, opaque token, lifetime", `{"fromJWT": true, "lifetime": "15m"}`, map[string]any{"token": "opaque"}, 15 * time.Minute, ""},
		{"fromJWT, opaque token, no lifetime", `{"fromJWT": true}`, map[string]any{"token": "opaque"}, 0, "the token is not a JWT with an exp claim"},
		{"RFC3339", `{"jsonPointer": "/expires", "format": "RFC3339"}`, map[string]any{"token": "t", "expires": now.Add(90 * time.Minute).Format(time.RFC3339)}, 90 * time.Minute, ""},
		{"RFC3339 with milliseconds and an offset", `{"jsonPointer": "/expires", "format": "RFC3339"}`,
			map[string]any{"token": "t", "expires": now.Add(time.Hour).In(time.FixedZone("", 3600)).Format("2006-01-02T15:04:05.000-07:00")}, time.Hour, ""},
		{"UnixSeconds", `{"jsonPointer": "/exp", "format": "UnixSeconds"}`, map[string]any{"token": "t", "exp": now.Add(time.Hour).Unix()}, time.Hour, ""},
		{"UnixSeconds in a string", `{"jsonPointer": "/exp", "format": "UnixSeconds"}`, map[string]any{"token": "t", "exp": fmt.Sprint(now.Add(time.Hour).Unix())}, time.Hour, ""},
		{"SecondsFromNow", `{"jsonPointer": "/data/expires_in", "format": "SecondsFromNow"}`, map[string]any{"token": "t", "data": map[string]any{"expires_in": 600}}, 10 * time.Minute, ""},
		{"SecondsFromNow fractional", `{"jsonPointer": "/ttl", "format": "SecondsFromNow"}`, map[string]any{"token": "t", "ttl": 1.5}, 1500 * time.Millisecond, ""},
		{"pointer missing: lifetime", `{"jsonPointer": "/ttl", "format": "SecondsFromNow", "lifetime": "2h"}`, map[string]any{"token": "t"}, 2 * time.Hour, ""},
		{"pointer null: lifetime", `{"jsonPointer": "/ttl", "format": "SecondsFromNow", "lifetime": "2h"}`, map[string]any{"token": "t", "ttl": nil}, 2 * time.Hour, ""},
		{"pointer missing, no lifetime", `{"jsonPointer": "/ttl", "format": "SecondsFromNow"}`, map[string]any{"token": "t"}, 0, "the answer has no value at /ttl"},
		{"both: the earlier wins (JWT)", `{"fromJWT": true, "jsonPointer": "/ttl", "format": "SecondsFromNow"}`, map[string]any{"token": jwtIn(0, 5*time.Minute), "ttl": 600}, 5 * time.Minute, ""},
		{"both: the earlier wins (pointer)", `{"fromJWT": true, "jsonPointer": "/ttl", "format": "SecondsFromNow"}`, map[string]any{"token": jwtIn(0, 50*time.Minute), "ttl": 600}, 10 * time.Minute, ""},
		{"lifetime only", `{"lifetime": "3h"}`, map[string]any{"token": jwtIn(0, time.Hour)}, 3 * time.Hour, ""},
		{"RFC3339 garbled", `{"jsonPointer": "/expires", "format": "RFC3339", "lifetime": "1h"}`, map[string]any{"token": "t", "expires": "tomorrow"}, 0, "not a RFC3339 time"},
		{"UnixSeconds not a number", `{"jsonPointer": "/exp", "format": "UnixSeconds"}`, map[string]any{"token": "t", "exp": true}, 0, "not a UnixSeconds time"},
		{"SecondsFromNow negative", `{"jsonPointer": "/ttl", "format": "SecondsFromNow"}`, map[string]any{"token": "t", "ttl": -5}, 0, "not a SecondsFromNow time"},
		{"already expired", `{"jsonPointer": "/exp", "format": "UnixSeconds"}`, map[string]any{"token": "t", "exp": now.Add(-time.Minute).Unix()}, 0, "already expired"},
		{"more than a year", `{"jsonPointer": "/ttl", "format": "SecondsFromNow"}`, map[string]any{"token": "t", "ttl": 1e9}, 0, "more than a year"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(tc.body)
			srv := answer(t, 200, nil, string(body))
			p := configured(t, providers.Options{Now: conformance.Clock}, `{"token": {"jsonPointer": "/token"}, "expiry": `+tc.expiry+`}`)
			token, err := p.Login(context.Background(), srv.URL, nil)
			if tc.err != "" {
				pe := conformance.RequireError(t, err, providers.InvalidResponse)
				if !strings.Contains(pe.Message, tc.err) {
					t.Errorf("message %q, want %q", pe.Message, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if !token.ExpiresAt.Equal(now.Add(tc.want)) {
				t.Errorf("expires at now + %s, want now + %s", token.ExpiresAt.Sub(now), tc.want)
			}
		})
	}
}

// TestRequest: the request is rendered as spec.http says.
func TestRequest(t *testing.T) {
	creds := providers.Credentials{"client-id": []byte("id:1"), "apiKey": []byte("k&=é"), "user": []byte("u"), "unused": []byte("x")}
	for _, tc := range []struct {
		name     string
		settings string
		check    func(t *testing.T, r *http.Request, body string)
	}{
		{"json body, headers, path", `{"method": "PUT", "path": "/v1/session",
			"headers": {"Authorization": "Basic {{ print (index . \"client-id\") \":\" .apiKey | b64enc }}", "X-User": "{{ .user | upper }}"},
			"body": {"fields": {"user": "{{ .user }}", "key": "{{ $.apiKey }}", "fixed": "literal"}},
			"token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`,
			func(t *testing.T, r *http.Request, body string) {
				id, key, _ := r.BasicAuth()
				if r.Method != "PUT" || r.URL.Path != "/base/v1/session" || id != "id" || key != "1:k&=é" || r.Header.Get("X-User") != "U" {
					t.Errorf("request %s %s basic %q:%q headers %v", r.Method, r.URL.Path, id, key, r.Header)
				}
				if r.Header.Get("Content-Type") != "application/json" || body != `{"fixed":"literal","key":"k\u0026=é","user":"u"}` {
					t.Errorf("body %s (%s)", body, r.Header.Get("Content-Type"))
				}
			}},
		{"form body", `{"body": {"format": "form", "fields": {"grant": "pw", "key": "{{ .apiKey }}"}}, "headers": {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
			"token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`,
			func(t *testing.T, r *http.Request, body string) {
				form, err := url.ParseQuery(body)
				if r.Method != "POST" || err != nil || form.Get("key") != "k&=é" || form.Get("grant") != "pw" || len(form) != 2 {
					t.Errorf("request %s body %q", r.Method, body)
				}
				if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded; charset=utf-8" {
					t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
				}
			}},
		{"GET without a body", `{"method": "GET", "path": "token", "headers": {"X-Api-Key": "{{ .apiKey | urlquery }}"}, "token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`,
			func(t *testing.T, r *http.Request, body string) {
				if r.Method != "GET" || r.URL.Path != "/base/token" || body != "" || r.Header.Get("Content-Type") != "" || r.Header.Get("X-Api-Key") != "k%26%3D%C3%A9" {
					t.Errorf("request %s %s body %q headers %v", r.Method, r.URL.Path, body, r.Header)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = true
				body, _ := io.ReadAll(r.Body)
				tc.check(t, r, string(body))
				_, _ = io.WriteString(w, "tok")
			}))
			defer srv.Close()
			p := configured(t, providers.Options{}, tc.settings)
			if _, err := p.Login(context.Background(), srv.URL+"/base/", creds); err != nil || !seen {
				t.Fatalf("Login: %v (request seen: %v)", err, seen)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	p := configured(t, providers.Options{}, `{"headers": {"X-Key": "{{ index . \"api-key\" }}"}, "body": {"fields": {"u": "{{ .user }}", "both": "{{ .user }}{{ $.tenant }}"}},
		"token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`)
	if got := p.CredentialKeyNames(); got != "api-key, tenant, user" {
		t.Errorf("CredentialKeyNames = %q", got)
	}
	creds := providers.Credentials{"api-key": []byte("k"), "tenant": []byte("t"), "user": []byte("u"), "note": []byte("unrelated")}
	if used := p.UsedCredentials(creds); len(used) != 3 || used["note"] != nil {
		t.Errorf("UsedCredentials = %v", used)
	}
	if err := p.Validate(creds); err != nil {
		t.Errorf("Validate = %v", err)
	}
	delete(creds, "tenant")
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("a request was sent") }))
	defer srv.Close()
	_, err := p.Login(context.Background(), srv.URL, creds)
	if pe := conformance.RequireError(t, err, providers.InvalidCredentials); !strings.Contains(pe.Message, `"tenant"`) {
		t.Errorf("message %q", pe.Message)
	}

	// Before WithSettings: every key counts, and nothing logs in.
	unconfigured := New(providers.Options{})
	if len(unconfigured.UsedCredentials(creds)) != len(creds) || len(Registration.UsedCredentials(creds)) != len(creds) {
		t.Error("an unconfigured http provider does not count every key")
	}
	_, err = unconfigured.Login(context.Background(), srv.URL, creds)
	conformance.RequireError(t, err, providers.InvalidTemplate)
}

// TestHeaderValueFromCredentials: a credential with a line break (a
// Secret written with echo) cannot go into a header; the message says so
// without quoting it.
func TestHeaderValueFromCredentials(t *testing.T) {
	p := configured(t, providers.Options{}, `{"headers": {"Authorization": "Bearer {{ .key }}"}, "token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("a request was sent") }))
	defer srv.Close()
	_, err := p.Login(context.Background(), srv.URL, providers.Credentials{"key": []byte(conformance.SentinelSecret + "\n")})
	if pe := conformance.RequireError(t, err, providers.InvalidCredentials); !strings.Contains(pe.Message, "trailing newline") {
		t.Errorf("message %q", pe.Message)
	}
	p = configured(t, providers.Options{}, `{"headers": {"Authorization": "Bearer {{ trim .key }}"}, "token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`)
	srv2 := answer(t, 200, nil, "tok")
	if _, err := p.Login(context.Background(), srv2.URL, providers.Credentials{"key": []byte("k\n")}); err != nil {
		t.Errorf("with trim: %v", err)
	}
}

func TestWithSettings(t *testing.T) {
	const ok = `"token": {"rawBody": true}, "expiry": {"lifetime": "1h"}`
	for _, tc := range []struct{ settings, want string }{
		{``, "spec.http is required"},
		{`null`, "spec.http is required"},
		{`{"expiry": {"lifetime": "1h"}}`, "exactly one of jsonPointer, rawBody: true or header"},
		{`{"token": {"rawBody": true, "header": "X"}, "expiry": {"lifetime": "1h"}}`, "exactly one"},
		{`{"token": {"rawBody": false}, "expiry": {"lifetime": "1h"}}`, "exactly one"},
		{`{"token": {"rawBody": true}, "expiry": {}}`, "at least one of fromJWT"},
		{`{"token": {"rawBody": true}, "expiry": {"fromJWT": false}}`, "at least one of fromJWT"},
		{`{"token": {"rawBody": true}, "expiry": {"jsonPointer": "/exp"}}`, "format (RFC3339, UnixSeconds or SecondsFromNow) is required"},
		{`{"token": {"rawBody": true}, "expiry": {"lifetime": "1h", "format": "RFC3339"}}`, "only allowed with expiry.jsonPointer"},
		{`{"token": {"rawBody": true}, "expiry": {"jsonPointer": "/exp", "format": "Unix"}}`, "must be RFC3339, UnixSeconds or SecondsFromNow"},
		{`{"token": {"jsonPointer": "data/token"}, "expiry": {"lifetime": "1h"}}`, `token.jsonPointer "data/token" is not a JSON pointer`},
		{`{"token": {"jsonPointer": "/a~2"}, "expiry": {"lifetime": "1h"}}`, "~ is followed by 0"},
		{`{"token": {"header": "Bad Header"}, "expiry": {"lifetime": "1h"}}`, "not a valid header name"},
		{`{"method": "DELETE", ` + ok + `}`, "method must be GET, POST, PUT or PATCH"},
		{`{"method": "GET", "body": {"fields": {"a": "b"}}, ` + ok + `}`, "body is not allowed with method GET"},
		{`{"body": {"format": "xml"}, ` + ok + `}`, "body.format must be json or form"},
		{`{"path": "/login?x=1", ` + ok + `}`, "path must be a path only"},
		{`{"path": "../admin/keys", ` + ok + `}`, `spec.http.path is refused: "." and ".." segments`},
		{`{"path": "/v1/./login", ` + ok + `}`, `spec.http.path is refused: "." and ".." segments`},
		{`{"path": "/v1/..", ` + ok + `}`, `spec.http.path is refused: "." and ".." segments`},
		{`{"path": "%2e%2e/admin/keys", ` + ok + `}`, `spec.http.path is refused: "." and ".." segments`},
		{`{"path": "%2E%2E/admin/keys", ` + ok + `}`, `spec.http.path is refused: "." and ".." segments`},
		{`{"path": ".%2e/admin/keys", ` + ok + `}`, `spec.http.path is refused: "." and ".." segments`},
		{`{"path": "..;/admin/keys", ` + ok + `}`, `spec.http.path is refused: "." and ".." segments`},
		{`{"path": "%252e%252e/admin/keys", ` + ok + `}`, `spec.http.path is refused: "." and ".." segments`},
		{`{"path": "x%2f..%2fadmin", ` + ok + `}`, `spec.http.path is refused: "." and ".." segments`},
		{`{"path": "x%2fadmin", ` + ok + `}`, "spec.http.path is refused: backslashes are not allowed in a URL path, nor slashes or backslashes percent-encoded"},
		{`{"path": "x\\admin", ` + ok + `}`, "spec.http.path is refused: backslashes are not allowed"},
		{`{"headers": {"Host": "evil"}, ` + ok + `}`, "must not set Host"},
		{`{"headers": {"content-length": "1"}, ` + ok + `}`, "must not set Content-Length"},
		{`{"headers": {"X Y": "1"}, ` + ok + `}`, "not a valid header name"},
		{`{"headers": {"X": "{{ .a "}, ` + ok + `}`, `spec.http.headers["X"]: does not parse`},
		{`{"body": {"fields": {"f": "{{ printf \"%09999999d\" 1 }}"}}, ` + ok + `}`, `spec.http.body.fields["f"]: function printf is not allowed`},
		{`{"body": {"fields": {"f": "{{ range . }}{{ . }}{{ end }}"}}, ` + ok + `}`, "range is not allowed"},
		{`{"body": {"fields": {"f": "{{ with .a }}{{ . }}{{ end }}"}}, ` + ok + `}`, "with is not allowed"},
		{`{"body": {"fields": {"f": "{{ define \"x\" }}a{{ end }}"}}, ` + ok + `}`, "define, block and template are not allowed"},
		{`{"body": {"fields": {"f": "{{ . }}"}}, ` + ok + `}`, "only as .key"},
		{`{"body": {"fields": {"f": "{{ $ }}"}}, ` + ok + `}`, "only as .key"},
		{`{"body": {"fields": {"f": "{{ len . }}"}}, ` + ok + `}`, "only as .key"},
		{`{"body": {"fields": {"f": "{{ .a.b }}"}}, ` + ok + `}`, "has no fields"},
		{`{"body": {"fields": {"f": "{{ (.a).b }}"}}, ` + ok + `}`, "has no fields"},
		{`{"body": {"fields": {"f": "{{ index . .a }}"}}, ` + ok + `}`, "takes a quoted key"},
		{`{"body": {"fields": {"f": "{{ call .a }}"}}, ` + ok + `}`, "function call is not allowed"},
		{`{"success": {"equals": "x"}, ` + ok + `}`, "success.jsonPointer is required"},
		{`{"tokens": {}, ` + ok + `}`, `unknown field "tokens"`},
	} {
		_, err := New(providers.Options{}).WithSettings([]byte(tc.settings))
		if providers.KindOf(err) != providers.InvalidTemplate || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithSettings(%s) = %v, want InvalidTemplate %q", tc.settings, err, tc.want)
		}
	}
}

// TestLoginCountsFromStart: lifetimes count from before the request.
func TestLoginCountsFromStart(t *testing.T) {
	clock := conformance.NewManualClock(conformance.Now)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clock.Advance(30 * time.Second)
		_, _ = io.WriteString(w, `{"token": "t", "ttl": 600}`)
	}))
	defer srv.Close()
	p := configured(t, providers.Options{Now: clock.Now}, `{"token": {"jsonPointer": "/token"}, "expiry": {"jsonPointer": "/ttl", "format": "SecondsFromNow"}}`)
	token, err := p.Login(context.Background(), srv.URL, nil)
	if err != nil || !token.ObtainedAt.Equal(conformance.Now) || !token.ExpiresAt.Equal(conformance.Now.Add(10*time.Minute)) {
		t.Errorf("Login = %+v, %v", token, err)
	}
}

var sentinelCreds = providers.Credentials{"user": []byte(conformance.SentinelUser), "secret": []byte(conformance.SentinelSecret)}

const sentinelSettings = `{"headers": {"X-User": "{{ .user }}"}, "body": {"fields": {"secret": "{{ .secret }}"}}, `

func TestUndocumented(t *testing.T) {
	for name, tokenAndExpiry := range map[string]string{
		"jsonPointer": `"token": {"jsonPointer": "/token"}, "expiry": {"fromJWT": true, "lifetime": "1h"}}`,
		"rawBody":     `"token": {"rawBody": true}, "expiry": {"fromJWT": true}}`,
		"header":      `"token": {"header": "X-Token"}, "expiry": {"jsonPointer": "/exp", "format": "UnixSeconds"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			settingsJSON := sentinelSettings + tokenAndExpiry
			conformance.RunUndocumented(t, func(o providers.Options) providers.Provider {
				return configured(t, o, settingsJSON)
			}, http.StatusOK, sentinelCreds)
		})
	}
}

// TestRejections: with no documentation to go by, a 401 or 403 with a JSON
// object or array, and a 2xx that fails spec.http.success, are the API's
// rejection; a 401 or 403 with anything else is RequestBlocked.
func TestRejections(t *testing.T) {
	settingsJSON := sentinelSettings + `"token": {"jsonPointer": "/token"}, "expiry": {"lifetime": "1h"}, "success": {"jsonPointer": "/ok", "equals": "true"}}`
	conformance.RunRejections(t, func(o providers.Options) providers.Provider { return configured(t, o, settingsJSON) }, sentinelCreds, conformance.Rejections{
		Documented: map[string]fake.Answer{
			"401 JSON object":             fake.JSONAnswer(401, `{"message": "bad password `+conformance.SentinelBody+`"}`),
			"403 JSON object":             fake.JSONAnswer(403, `{"error": {"code": "locked"}}`),
			"401 JSON array":              fake.JSONAnswer(401, `["bad password"]`),
			"401 JSON without the header": {Status: 401, Body: `{"message": "bad password"}`},
			"200 failing success":         fake.JSONAnswer(200, `{"ok": false, "token": "`+conformance.SentinelToken+`"}`),
		},
	})
}

// TestBoundedAnswers: end to end against a local server, an answer over a
// bound is an InvalidResponse naming it, and one at the bound is read: 64
// KiB of headers, a token of 256 KiB (in the body or in a header, which
// the header bound keeps smaller), JSON 32 levels deep and of 10,000
// values.
func TestBoundedAnswers(t *testing.T) {
	const (
		inBody   = `"token": {"jsonPointer": "/token"}, "expiry": {"lifetime": "1h"}}`
		inHeader = `"token": {"header": "X-Token"}, "expiry": {"lifetime": "1h"}}`
	)
	jsonType := map[string]string{"Content-Type": "application/json"}
	tokenBody := func(n int) string { return `{"token": "` + strings.Repeat("t", n) + `"}` }
	// deep nests n arrays in /deep; with the object, n+1 levels.
	deep := func(n int) string {
		return `{"token": "t", "deep": ` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	// values makes an answer of n values: the object, the token, an array
	// and n-3 numbers in it.
	values := func(n int) string {
		return `{"token": "t", "list": [` + strings.TrimSuffix(strings.Repeat("1,", n-3), ",") + `]}`
	}
	for _, tc := range []struct {
		name, settings string
		header         map[string]string
		body           string
		want           string // "" for a login
	}{
		{"a 9 MiB header", inBody, map[string]string{"X-Padding": strings.Repeat("p", 9<<20)}, tokenBody(10), "response headers larger than 64 KiB"},
		{"a 9 MiB token header", inHeader, map[string]string{"X-Token": strings.Repeat("t", 9<<20)}, "", "response headers larger than 64 KiB"},
		{"a 60 KiB token header", inHeader, map[string]string{"X-Token": strings.Repeat("t", 60<<10)}, "", ""},
		{"a token of 256 KiB + 1", inBody, jsonType, tokenBody(login.MaxTokenBytes + 1), "token larger than 256 KiB"},
		{"a token of 256 KiB", inBody, jsonType, tokenBody(login.MaxTokenBytes), ""},
		{"a raw token of 256 KiB + 1", `"token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`, nil, strings.Repeat("t", login.MaxTokenBytes+1), "token larger than 256 KiB"},
		{"33 levels of nested [", inBody, jsonType, deep(32), "nested deeper than 32 levels"},
		{"a body of 33 levels of [", inBody, jsonType, strings.Repeat("[", 33) + strings.Repeat("]", 33), "nested deeper than 32 levels"},
		{"32 levels", inBody, jsonType, deep(31), ""},
		{"10,001 values", inBody, jsonType, values(login.MaxJSONValues + 1), "more than 10,000 values"},
		{"10,000 values", inBody, jsonType, values(login.MaxJSONValues), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := answer(t, 200, tc.header, tc.body)
			p := configured(t, providers.Options{Now: conformance.Clock}, `{`+tc.settings)
			token, err := p.Login(context.Background(), srv.URL, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Login: %v", err)
				}
				if len(token.Value) == 0 {
					t.Error("no token")
				}
				return
			}
			pe := conformance.RequireError(t, err, providers.InvalidResponse)
			if !strings.Contains(pe.Message, tc.want) {
				t.Errorf("message %q, want it to contain %q", pe.Message, tc.want)
			}
		})
	}
}

// TestErrorsNeverLeak feeds sentinels through every error path.
func TestErrorsNeverLeak(t *testing.T) {
	s := conformance.SentinelUser + " " + conformance.SentinelSecret + " " + conformance.SentinelBody
	tok := conformance.SentinelToken
	for _, tc := range []struct {
		settings string
		status   int
		header   map[string]string
		body     string
	}{
		{`"token": {"jsonPointer": "/token"}, "expiry": {"lifetime": "1h"}, "success": {"jsonPointer": "/status", "equals": "OK"}}`, 200, nil, `{"status": "` + s + `", "token": "` + tok + `"}`},
		{`"token": {"jsonPointer": "/token"}, "expiry": {"lifetime": "1h"}}`, 200, nil, `{"token": ["` + tok + `"]}`},
		{`"token": {"jsonPointer": "/token"}, "expiry": {"lifetime": "1h"}}`, 200, nil, `{"token": "` + tok + "\\u0000" + `"}`},
		{`"token": {"jsonPointer": "/token"}, "expiry": {"jsonPointer": "/exp", "format": "RFC3339"}}`, 200, nil, `{"token": "` + tok + `", "exp": "` + s + `"}`},
		{`"token": {"jsonPointer": "/token"}, "expiry": {"jsonPointer": "/exp", "format": "UnixSeconds"}}`, 200, nil, `{"token": "` + tok + `", "exp": "` + conformance.SentinelBody + `"}`},
		{`"token": {"jsonPointer": "/token"}, "expiry": {"fromJWT": true}}`, 200, nil, `{"token": "` + tok + `"}`},
		{`"token": {"rawBody": true}, "expiry": {"fromJWT": true}}`, 200, nil, tok},
		{`"token": {"rawBody": true}, "expiry": {"fromJWT": true}}`, 200, nil, makeJWT(`{"exp": 1, "sub": "` + tok + `"}`)},
		{`"token": {"rawBody": true}, "expiry": {"fromJWT": true}}`, 200, nil, s},
		{`"token": {"header": "X-Token"}, "expiry": {"fromJWT": true}}`, 200, map[string]string{"X-Token": tok}, s},
		{`"token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`, 401, nil, s},
		{`"token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`, 422, nil, `{"error": "` + s + `"}`},
	} {
		srv := answer(t, tc.status, tc.header, tc.body)
		p := configured(t, providers.Options{Now: conformance.Clock}, sentinelSettings+tc.settings)
		_, err := p.Login(context.Background(), srv.URL, sentinelCreds)
		if err == nil {
			t.Errorf("%s: no error", tc.body)
			continue
		}
		conformance.RequireNoSentinel(t, err.Error())
	}
	// Rendering failures.
	for _, tmpl := range []string{`{{ b64dec .secret }}`, `{{ slice .secret 1000 }}`, `{{ eq .secret 1 }}`} {
		p := configured(t, providers.Options{}, `{"body": {"fields": {"f": "`+strings.ReplaceAll(tmpl, `"`, `\"`)+`"}}, "token": {"rawBody": true}, "expiry": {"lifetime": "1h"}}`)
		_, err := p.Login(context.Background(), "http://127.0.0.1:1", sentinelCreds)
		conformance.RequireError(t, err, providers.InvalidTemplate)
	}
}

func TestRegistration(t *testing.T) {
	if Registration.Name != "http" || Registration.DefaultEndpoint != "" || len(Registration.CredentialKeys) != 0 {
		t.Errorf("Registration = %+v", Registration)
	}
	p := Registration.New(providers.Options{})
	if _, ok := p.(providers.Configurable); !ok {
		t.Error("not Configurable")
	}
	if _, ok := p.(providers.CredentialUser); !ok {
		t.Error("not a CredentialUser")
	}
}
