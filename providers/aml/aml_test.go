package aml

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// docSuccess is the documented sample response.
const docSuccess = `{
"error": false,
"status": "SUCCESS",
"data": {
"access_token": "Random Access Token"
}
}`

var creds = providers.Credentials{"email": []byte("user@example.com"), "password": []byte("amlWatcher@!#")}

var sentinelCreds = providers.Credentials{
	"email":    []byte(conformance.SentinelUser),
	"password": []byte(conformance.SentinelPassword),
}

// server answers every request with status and body, after handing the
// request to inspect.
func server(t *testing.T, status int, body string, inspect func(*http.Request, []byte)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, _ := io.ReadAll(r.Body)
		if inspect != nil {
			inspect(r, reqBody)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func makeJWT(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + ".c2lnbmF0dXJl"
}

func success(token string) string {
	return fmt.Sprintf(`{"error": false, "status": "SUCCESS", "data": {"access_token": %q}}`, token)
}

func TestLoginDocumentedSuccess(t *testing.T) {
	var seen bool
	srv := server(t, http.StatusOK, docSuccess, func(r *http.Request, body []byte) {
		seen = true
		if r.Method != http.MethodPost || r.URL.Path != "/api/get-access-token" {
			t.Errorf("request = %s %s, want POST /api/get-access-token", r.Method, r.URL.Path)
		}
		for header, want := range map[string]string{
			"Content-Type": "application/json",
			"Accept":       "application/json",
			"User-Agent":   login.DefaultUserAgent,
		} {
			if got := r.Header.Get(header); got != want {
				t.Errorf("%s = %q, want %q", header, got, want)
			}
		}
		var sent map[string]string
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("request body is not a JSON object of strings: %v", err)
		}
		want := map[string]string{"email": "user@example.com", "password": "amlWatcher@!#"}
		if fmt.Sprint(sent) != fmt.Sprint(want) {
			t.Errorf("request body = %v, want %v", sent, want)
		}
	})

	token, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, creds)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if !seen {
		t.Fatal("the server saw no request")
	}
	want := providers.Token{Value: "Random Access Token", ObtainedAt: conformance.Now, ExpiresAt: conformance.Now.Add(3 * time.Hour)}
	if token.Value != want.Value || !token.ObtainedAt.Equal(want.ObtainedAt) || !token.ExpiresAt.Equal(want.ExpiresAt) || token.Extra != nil {
		t.Errorf("token = %+v, want %+v", *token, want)
	}
}

// TestLoginDataArray: the response table's form of data, an array of
// the one object the sample shows, gives the same token.
func TestLoginDataArray(t *testing.T) {
	srv := server(t, http.StatusOK, `{"error": false, "status": "SUCCESS", "data": [{"access_token": "Random Access Token"}]}`, nil)
	token, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, creds)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if token.Value != "Random Access Token" || !token.ExpiresAt.Equal(conformance.Now.Add(3*time.Hour)) {
		t.Errorf("token = %+v", *token)
	}
}

func TestLoginEndpointJoin(t *testing.T) {
	for _, suffix := range []string{"", "/", "/base", "/base/"} {
		t.Run(suffix, func(t *testing.T) {
			var path string
			srv := server(t, http.StatusOK, docSuccess, func(r *http.Request, _ []byte) { path = r.URL.Path })
			if _, err := New(providers.Options{}).Login(context.Background(), srv.URL+suffix, creds); err != nil {
				t.Fatalf("Login: %v", err)
			}
			want := strings.TrimSuffix(suffix, "/") + "/api/get-access-token"
			if path != want {
				t.Errorf("path = %q, want %q", path, want)
			}
		})
	}
}

type recordingTransport struct{ url string }

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.url = r.URL.String()
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(docSuccess)),
		Request:    r,
	}, nil
}

// TestRegistrationDefaultEndpoint: a TokenRequest without an endpoint logs
// in at the documented URL. The registration resolves the default; the
// provider itself never does.
func TestRegistrationDefaultEndpoint(t *testing.T) {
	rt := &recordingTransport{}
	p := New(providers.Options{HTTPClient: &http.Client{Transport: rt}})
	if _, err := p.Login(context.Background(), Registration.Endpoint(""), creds); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if want := "https://api.amlwatcher.com/api/get-access-token"; rt.url != want {
		t.Errorf("URL = %q, want %q", rt.url, want)
	}

	_, err := p.Login(context.Background(), "", creds)
	conformance.RequireError(t, err, providers.EndpointNotAllowed)
}

func TestLoginCustomUserAgent(t *testing.T) {
	var ua string
	srv := server(t, http.StatusOK, docSuccess, func(r *http.Request, _ []byte) { ua = r.Header.Get("User-Agent") })
	if _, err := New(providers.Options{UserAgent: "tokensync-test/1"}).Login(context.Background(), srv.URL, creds); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if ua != "tokensync-test/1" {
		t.Errorf("User-Agent = %q", ua)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds providers.Credentials
		want  string // message; "" for valid
	}{
		{"valid", creds, ""},
		{"short password is the provider's business", providers.Credentials{"email": []byte("a@b.c"), "password": []byte("x")}, ""},
		{"missing email", providers.Credentials{"password": []byte("p")}, `credentials secret is missing key "email"`},
		{"missing password", providers.Credentials{"email": []byte("a@b.c")}, `credentials secret is missing key "password"`},
		{"empty email", providers.Credentials{"email": nil, "password": []byte("p")}, `credentials secret key "email" is empty`},
		{"blank password", providers.Credentials{"email": []byte("a@b.c"), "password": []byte(" \n\t")}, `credentials secret key "password" is empty`},
		{"nil", nil, `credentials secret is missing key "email"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := New(providers.Options{}).Validate(tc.creds)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			pe := conformance.RequireError(t, err, providers.InvalidCredentials)
			if pe.Message != tc.want {
				t.Errorf("message = %q, want %q", pe.Message, tc.want)
			}
		})
	}
}

func TestLoginValidatesBeforeSending(t *testing.T) {
	srv := server(t, http.StatusOK, docSuccess, func(*http.Request, []byte) { t.Error("a request was sent") })
	_, err := New(providers.Options{}).Login(context.Background(), srv.URL, providers.Credentials{"email": []byte("a@b.c")})
	conformance.RequireError(t, err, providers.InvalidCredentials)
}

func TestLoginExpiry(t *testing.T) {
	now := conformance.Now.Unix()
	for _, tc := range []struct {
		name  string
		token string
		want  time.Duration // after ObtainedAt; 0 means an error
	}{
		{"opaque token: documented 3h", "Random Access Token", 3 * time.Hour},
		{"JWT with a shorter life", makeJWT(fmt.Sprintf(`{"iat":%d,"exp":%d}`, now, now+3600)), time.Hour},
		{"JWT with a longer life keeps 3h", makeJWT(fmt.Sprintf(`{"iat":%d,"exp":%d}`, now, now+5*3600)), 3 * time.Hour},
		{"JWT life counts from our clock", makeJWT(`{"iat":1000000000,"exp":1000001800}`), 30 * time.Minute},
		{"JWT with only exp, absolute", makeJWT(fmt.Sprintf(`{"exp":%d}`, now+600)), 10 * time.Minute},
		{"JWT without exp", makeJWT(`{"sub":"x"}`), 3 * time.Hour},
		{"JWT with a float exp", makeJWT(fmt.Sprintf(`{"iat":%d,"exp":%d.5}`, now, now+60)), 60*time.Second + 500*time.Millisecond},
		{"JWT already expired", makeJWT(fmt.Sprintf(`{"exp":%d}`, now-1)), 0},
		{"JWT with exp before iat", makeJWT(`{"iat":2000,"exp":1000}`), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, http.StatusOK, success(tc.token), nil)
			token, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, creds)
			if tc.want == 0 {
				conformance.RequireError(t, err, providers.InvalidResponse)
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if got := token.ExpiresAt.Sub(conformance.Now); got != tc.want {
				t.Errorf("lifetime = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestLoginCountsFromStart: the login's start, before the request is
// sent, is ObtainedAt and the point the 3 hours and a JWT's lifetime count
// from; an answer that takes 30 s does not add 30 s. A lifetime shorter
// than the answer took is an answer we cannot use.
func TestLoginCountsFromStart(t *testing.T) {
	start := conformance.Now
	now := start.Unix()
	for _, tc := range []struct {
		name  string
		token string
		want  time.Duration // after start; 0 means InvalidResponse
	}{
		{"opaque token: 3h", "Random Access Token", 3 * time.Hour},
		{"JWT lifetime", makeJWT(fmt.Sprintf(`{"iat":%d,"exp":%d}`, now, now+3600)), time.Hour},
		{"JWT lifetime shorter than the answer took", makeJWT(fmt.Sprintf(`{"iat":%d,"exp":%d}`, now, now+10)), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := conformance.NewManualClock(start)
			srv := server(t, http.StatusOK, success(tc.token), func(*http.Request, []byte) { clock.Advance(30 * time.Second) })
			token, err := New(providers.Options{Now: clock.Now}).Login(context.Background(), srv.URL, creds)
			if tc.want == 0 {
				conformance.RequireError(t, err, providers.InvalidResponse)
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if !token.ObtainedAt.Equal(start) || !token.ExpiresAt.Equal(start.Add(tc.want)) {
				t.Errorf("ObtainedAt %s, ExpiresAt %s; want %s and %s", token.ObtainedAt, token.ExpiresAt, start, start.Add(tc.want))
			}
		})
	}
}

func TestLoginFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		kind   providers.ErrorKind
	}{
		{"401 FAIL", 401, `{"error": "Invalid email or password", "status": "FAIL", "data": []}`, providers.AuthenticationFailed},
		{"403 FAIL", 403, `{"error": "Account disabled", "status": "FAIL"}`, providers.AuthenticationFailed},
		{"401 error without status", 401, `{"error": "Unauthenticated"}`, providers.AuthenticationFailed},
		{"401 HTML", 401, `<html>Unauthorized</html>`, providers.RequestBlocked},
		{"403 empty", 403, ``, providers.RequestBlocked},
		{"403 another JSON document", 403, `{"message": "Forbidden"}`, providers.RequestBlocked},
		{"401 SUCCESS", 401, `{"error": false, "status": "SUCCESS", "data": {"access_token": "t"}}`, providers.RequestBlocked},
		{"422 password rule", 422, `{"error": {"password": ["The password must be at least 8 characters."]}, "status": "FAIL", "data": []}`, providers.AuthenticationFailed},
		{"400 about credentials", 400, `{"error": "Invalid credentials", "status": "FAIL"}`, providers.AuthenticationFailed},
		{"400 otherwise", 400, `{"error": "Malformed request", "status": "FAIL"}`, providers.InvalidCredentials},
		{"422 not JSON", 422, `Unprocessable`, providers.InvalidCredentials},
		{"404", 404, `Not Found`, providers.InvalidCredentials},
		{"405", 405, ``, providers.InvalidCredentials},
		{"200 FAIL about credentials", 200, `{"error": "Invalid email or password", "status": "FAIL", "data": []}`, providers.AuthenticationFailed},
		{"200 FAIL with an object error", 200, `{"error": {"email": ["The selected email is invalid."]}, "status": "FAIL"}`, providers.AuthenticationFailed},
		{"200 FAIL unauthorised", 200, `{"error": "Unauthorized", "status": "FAIL"}`, providers.AuthenticationFailed},
		{"200 FAIL otherwise", 200, `{"error": "Something went wrong", "status": "FAIL", "data": []}`, providers.InvalidResponse},
		{"200 FAIL without error", 200, `{"error": false, "status": "FAIL", "data": []}`, providers.InvalidResponse},
		{"200 error true", 200, `{"error": true, "status": "SUCCESS", "data": {"access_token": "t"}}`, providers.InvalidResponse},
		{"200 error string with SUCCESS", 200, `{"error": "invalid password", "status": "SUCCESS", "data": {"access_token": "t"}}`, providers.AuthenticationFailed},
		{"200 unknown status", 200, `{"error": false, "status": "PENDING", "data": {"access_token": "t"}}`, providers.InvalidResponse},
		{"200 data empty array", 200, `{"error": false, "status": "SUCCESS", "data": []}`, providers.InvalidResponse},
		{"200 data array of two", 200, `{"error": false, "status": "SUCCESS", "data": [{"access_token": "t"}, {"access_token": "u"}]}`, providers.InvalidResponse},
		{"200 data array of a string", 200, `{"error": false, "status": "SUCCESS", "data": ["t"]}`, providers.InvalidResponse},
		{"200 data array of null", 200, `{"error": false, "status": "SUCCESS", "data": [null]}`, providers.InvalidResponse},
		{"200 data nested array", 200, `{"error": false, "status": "SUCCESS", "data": [[{"access_token": "t"}]]}`, providers.InvalidResponse},
		{"200 data array without token", 200, `{"error": false, "status": "SUCCESS", "data": [{"token": "t"}]}`, providers.InvalidResponse},
		{"200 data string", 200, `{"error": false, "status": "SUCCESS", "data": "t"}`, providers.InvalidResponse},
		{"200 token by another case", 200, `{"error": false, "status": "SUCCESS", "data": {"ACCESS_TOKEN": "t"}}`, providers.InvalidResponse},
		{"200 no data", 200, `{"error": false, "status": "SUCCESS"}`, providers.InvalidResponse},
		{"200 empty token", 200, `{"error": false, "status": "SUCCESS", "data": {"access_token": ""}}`, providers.InvalidResponse},
		{"200 blank token", 200, `{"error": false, "status": "SUCCESS", "data": {"access_token": "  "}}`, providers.InvalidResponse},
		{"200 numeric token", 200, `{"error": false, "status": "SUCCESS", "data": {"access_token": 12}}`, providers.InvalidResponse},
		{"200 token with a newline", 200, `{"error": false, "status": "SUCCESS", "data": {"access_token": "a\nb"}}`, providers.InvalidResponse},
		{"200 HTML", 200, `<html><body>maintenance</body></html>`, providers.InvalidResponse},
		{"200 empty", 200, ``, providers.InvalidResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, tc.status, tc.body, nil)
			_, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, creds)
			conformance.RequireError(t, err, tc.kind)
		})
	}
}

func TestLoginAccepts(t *testing.T) {
	for _, body := range []string{
		`{"error": "", "status": "SUCCESS", "data": {"access_token": "t"}}`,
		`{"error": null, "status": "success", "data": {"access_token": "t"}}`,
		`{"error": {}, "data": {"access_token": "t"}}`,
		`{"error": [], "status": "SUCCESS", "data": {"access_token": "t", "expires_in": 10800}}`,
		// The response table calls data an array.
		`{"error": false, "status": "SUCCESS", "data": [{"access_token": "t"}]}`,
		`{"error": false, "status": "SUCCESS", "data": [ {"access_token": "t", "expires_in": 10800} ]}`,
	} {
		srv := server(t, http.StatusOK, body, nil)
		if _, err := New(providers.Options{}).Login(context.Background(), srv.URL, creds); err != nil {
			t.Errorf("Login with %s: %v", body, err)
		}
	}
}

func TestLoginUndocumented(t *testing.T) {
	conformance.RunUndocumented(t, func(o providers.Options) providers.Provider { return New(o) }, http.StatusOK, sentinelCreds)
}

// TestLoginRejections: AML Watcher's FAIL answers about the credentials
// are its rejection, whatever the status; a 401 or 403 that is not a FAIL
// answer is RequestBlocked.
func TestLoginRejections(t *testing.T) {
	fail := `{"error": "Invalid email or password ` + conformance.SentinelBody + `", "status": "FAIL", "data": []}`
	conformance.RunRejections(t, func(o providers.Options) providers.Provider { return New(o) }, sentinelCreds, conformance.Rejections{
		Documented: map[string]fake.Answer{
			"401 FAIL":                  fake.JSONAnswer(401, fail),
			"403 FAIL":                  fake.JSONAnswer(403, fail),
			"401 FAIL as text/html":     {Status: 401, ContentType: "text/html", Body: fail},
			"422 password rule":         fake.JSONAnswer(422, `{"error": {"password": ["The password must be at least 8 characters."]}, "status": "FAIL"}`),
			"200 FAIL about the login":  fake.JSONAnswer(200, fail),
			"400 FAIL about the e-mail": fake.JSONAnswer(400, `{"error": "The selected email is invalid.", "status": "FAIL"}`),
		},
		Undocumented: map[string]fake.Answer{
			"gateway 403":         conformance.GatewayForbidden(403),
			"401 SUCCESS":         fake.JSONAnswer(401, `{"error": false, "status": "SUCCESS", "data": []}`),
			"401 JSON array FAIL": fake.JSONAnswer(401, `[{"status": "FAIL"}]`),
		},
	})
}

// TestErrorsNeverLeak runs every error path with sentinel credentials
// against answers that echo them, and sentinel tokens.
func TestErrorsNeverLeak(t *testing.T) {
	echo := fmt.Sprintf(`"%s %s %s"`, conformance.SentinelUser, conformance.SentinelPassword, conformance.SentinelBody)
	for _, tc := range []struct {
		status int
		body   string
	}{
		{401, `{"error": ` + echo + `, "status": "FAIL", "data": []}`},
		{403, echo},
		{400, `{"error": ` + echo + `, "status": "FAIL"}`},
		{422, `{"error": {"password": [` + echo + `]}, "status": "FAIL"}`},
		{404, echo},
		{200, `{"error": ` + echo + `, "status": "FAIL", "data": {"access_token": "` + conformance.SentinelToken + `"}}`},
		{200, `{"error": false, "status": ` + echo + `, "data": {"access_token": "` + conformance.SentinelToken + `"}}`},
		{200, `{"error": false, "status": "SUCCESS", "data": {"access_token": "` + conformance.SentinelToken + `\u0000"}}`},
		{200, `{"error": false, "status": "SUCCESS", "data": {"access_token": ` + echo + `[]}}`},
		{200, `{"error": false, "status": "SUCCESS", "data": ` + echo + `}`},
		{200, `{"error": false, "status": "SUCCESS", "data": [` + echo + `]}`},
		{200, `{"error": false, "status": "SUCCESS", "data": [{"access_token": "` + conformance.SentinelToken + `"}, ` + echo + `]}`},
		{200, `{"error": false, "status": "SUCCESS", "data": [{"access_token": "` + conformance.SentinelToken + `\n"}]}`},
		{200, `{"error": false, "status": "SUCCESS", "data": {"access_token": "` + makeJWT(`{"exp": 1, "sub": "`+conformance.SentinelToken+`"}`) + `"}}`},
		{200, `<html>` + echo + `</html>`},
	} {
		srv := server(t, tc.status, tc.body, nil)
		_, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, sentinelCreds)
		if err == nil {
			t.Errorf("HTTP %d %s: no error", tc.status, tc.body)
			continue
		}
		conformance.RequireNoSentinel(t, err.Error())
	}
	// Local validation failures name keys only.
	for _, c := range []providers.Credentials{
		{"email": []byte(conformance.SentinelUser)},
		{"password": []byte(conformance.SentinelPassword)},
		{"email": []byte(conformance.SentinelUser), "password": []byte(" ")},
	} {
		_, err := New(providers.Options{}).Login(context.Background(), "http://127.0.0.1:1", c)
		conformance.RequireError(t, err, providers.InvalidCredentials)
	}
}
