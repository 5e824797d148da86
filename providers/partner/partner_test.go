package partner

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

// The documented examples, verbatim.
const (
	docAccessKey = "986d8167a9b9a15e37db4ab4ad50877b01347a94"
	docSecret    = "79bPqahzbeYuIgyod1GBjsBy38wN7KuBBNNmN/emwjFCuAfq"
	// docToken's payload starts `{ uid":` (not JSON); iat 1691151257, exp 1691154857.
	docToken = "eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9.eyB1aWQiOiI2NWQwZjVjOS03ZmIwLTQ1NWMtOTAzNi05ZTcyZjBhOGQwZjYiLCJhciI6WyJQYXJ0bmVyIiwiUGFydG5lckFkbWluIl0sImFrIjoiNDU3NzFlYTEtYjAxMi00YjgwLThiYTQtNDk4OTFjNWQ4ZDQ3IiwicmVhbG0iOiJQYXJ0bmVyIiwiY2EiOiIwZWE3MDAwMS0wZjU4LTQ0YTItODBhZC05NTM2MzNmZjJjYzciLCJjaWQiOiIyOTI2MzczOS0yY2Y4LTQ4M2QtYWYxNS02MTUxZGM4NDQ4YjQiLCJkb21haW4iOiIvcGFydG5lcnMtaW50IiwiaWF0IjoxNjkxMTUxMjU3LCJleHAiOjE2OTExNTQ4NTd9.wBdfxnNYap0_M-omZUmnor7lB6c3ooVK2AENYtsIcfLzofW5bvkYgQzhaVABtJsU"
	doc400   = `{
"statusCode": "Error",
"error": {
"name": "InvalidRequestFormatError",
"message": "The request body is invalid. See error object ` + "`details`" + ` property for more info",
"details": [
{
"path": "",
"code": "required",
"message": "must have required property 'secret'",
"info": {
"missingProperty": "secret"
}
}
]
}
}`
	doc401 = `{
"statusCode": "Error",
"error": {
"message": "Service was unable to complete your request.",
"name": "AuthenticationError",
"code": "AuthenticationError",
"details": {
"reason": "AccessKeyUnauthorized"
}
}
}`
)

var creds = providers.Credentials{"accessKey": []byte(docAccessKey), "secret": []byte(docSecret)}

var sentinelCreds = providers.Credentials{
	"accessKey": []byte(conformance.SentinelUser),
	"secret":    []byte(conformance.SentinelSecret),
}

func server(t *testing.T, status int, body string, inspect func(*http.Request, []byte)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, _ := io.ReadAll(r.Body)
		if inspect != nil {
			inspect(r, reqBody)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func makeJWT(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS384","typ":"JWT"}`)) + "." + enc([]byte(claims)) + ".c2lnbmF0dXJl"
}

func TestLoginDocumentedSuccess(t *testing.T) {
	var seen bool
	srv := server(t, http.StatusCreated, docToken, func(r *http.Request, body []byte) {
		seen = true
		if r.Method != http.MethodPost || r.URL.Path != "/login" {
			t.Errorf("request = %s %s, want POST /login", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q", got)
		}
		if got := r.Header.Get("User-Agent"); got != login.DefaultUserAgent {
			t.Errorf("User-Agent = %q", got)
		}
		var sent map[string]string
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("request body is not a JSON object of strings: %v", err)
		}
		if len(sent) != 2 || sent["accessKey"] != docAccessKey || sent["secret"] != docSecret {
			t.Errorf("request body = %v", sent)
		}
	})
	token, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, creds)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if !seen {
		t.Fatal("the server saw no request")
	}
	// The example was issued in 2023 for an hour: the hour counts from now.
	if token.Value != docToken || !token.ObtainedAt.Equal(conformance.Now) || !token.ExpiresAt.Equal(conformance.Now.Add(time.Hour)) || token.Extra != nil {
		t.Errorf("token = %+v", *token)
	}
}

func TestLoginTokenForms(t *testing.T) {
	now := conformance.Now.Unix()
	valid := makeJWT(fmt.Sprintf(`{"iat":%d,"exp":%d}`, now, now+600))
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   time.Duration // after ObtainedAt; 0 means InvalidResponse
	}{
		{"201 bare", 201, valid, 10 * time.Minute},
		{"200 bare", 200, valid, 10 * time.Minute},
		{"surrounding whitespace", 201, "\r\n " + valid + "\n", 10 * time.Minute},
		{"JSON-quoted", 201, `"` + valid + `"`, 10 * time.Minute},
		{"JSON-quoted with whitespace", 201, ` " ` + valid + ` " `, 10 * time.Minute},
		{"only exp, absolute", 201, makeJWT(fmt.Sprintf(`{"exp":%d}`, now+120)), 2 * time.Minute},
		{"iat and exp in another clock", 201, makeJWT(`{"iat":1500000000,"exp":1500007200}`), 2 * time.Hour},
		{"float claims", 201, makeJWT(fmt.Sprintf(`{"iat":%d.25,"exp":%d.75}`, now, now+1)), 1500 * time.Millisecond},
		{"no exp", 201, makeJWT(`{"iat":1}`), 0},
		{"exp not a number", 201, makeJWT(`{"exp":"1700000000"}`), 0},
		{"expired", 201, makeJWT(fmt.Sprintf(`{"exp":%d}`, now-10)), 0},
		{"zero lifetime", 201, makeJWT(`{"iat":5,"exp":5}`), 0},
		{"over a year", 201, makeJWT(`{"iat":0,"exp":40000000}`), 0},
		{"not a JWT", 201, "opaque-token", 0},
		{"JSON object", 201, `{"token": "` + valid + `"}`, 0},
		{"bad JSON string", 201, `"abc`, 0},
		{"two tokens", 201, valid + " " + valid, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, tc.status, tc.body, nil)
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
			if strings.ContainsAny(token.Value, " \"\n") {
				t.Errorf("token value %q keeps quoting or whitespace", token.Value)
			}
		})
	}
}

// TestLoginCountsFromStart: the login's start, before the request is
// sent, is ObtainedAt and the point the JWT's lifetime counts from; an
// answer that takes 30 s does not add 30 s. A lifetime shorter than the
// answer took is an answer we cannot use.
func TestLoginCountsFromStart(t *testing.T) {
	start := conformance.Now
	for _, tc := range []struct {
		name  string
		token string
		want  time.Duration // after start; 0 means InvalidResponse
	}{
		{"the documented token's hour", docToken, time.Hour},
		{"lifetime shorter than the answer took", makeJWT(`{"iat":1000,"exp":1010}`), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := conformance.NewManualClock(start)
			srv := server(t, http.StatusCreated, tc.token, func(*http.Request, []byte) { clock.Advance(30 * time.Second) })
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

func TestLoginDocumentedFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		kind   providers.ErrorKind
		want   string // part of the message
	}{
		{"400 missing secret", 400, doc400, providers.InvalidCredentials, `lacks the property "secret"`},
		{"401 AccessKeyUnauthorized", 401, doc401, providers.AuthenticationFailed, "reason AccessKeyUnauthorized"},
		{"400 two missing", 400, `{"error": {"name": "InvalidRequestFormatError", "details": [{"info": {"missingProperty": "secret"}}, {"info": {"missingProperty": "accessKey"}}]}}`,
			providers.InvalidCredentials, `lacks the properties "accessKey", "secret"`},
		{"400 unsafe property", 400, `{"error": {"details": [{"info": {"missingProperty": "a b"}}]}}`, providers.InvalidCredentials, "malformed (HTTP 400)"},
		{"400 without details", 400, `{"statusCode": "Error"}`, providers.InvalidCredentials, "malformed (HTTP 400)"},
		{"400 details object", 400, `{"error": {"details": {"reason": "x"}}}`, providers.InvalidCredentials, "malformed (HTTP 400)"},
		{"401 unsafe reason", 401, `{"error": {"details": {"reason": "Access key <b>unauthorized</b>"}}}`, providers.AuthenticationFailed, "(HTTP 401)"},
		{"401 long reason", 401, `{"error": {"details": {"reason": "` + strings.Repeat("a", 65) + `"}}}`, providers.AuthenticationFailed, "(HTTP 401)"},
		{"403 in the documented shape", 403, doc401, providers.AuthenticationFailed, "(HTTP 403, reason AccessKeyUnauthorized)"},
		{"401 not JSON", 401, `Unauthorized`, providers.RequestBlocked, "HTTP 401 with a text/plain answer"},
		{"401 error not an object", 401, `{"statusCode": "Error", "error": "Unauthorized"}`, providers.RequestBlocked, "HTTP 401"},
		{"403", 403, ``, providers.RequestBlocked, "HTTP 403 with an empty answer"},
		{"404", 404, `Not Found`, providers.InvalidCredentials, "HTTP 404"},
		{"422", 422, doc400, providers.InvalidCredentials, "HTTP 422"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, tc.status, tc.body, nil)
			_, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, creds)
			pe := conformance.RequireError(t, err, tc.kind)
			if !strings.Contains(pe.Message, tc.want) {
				t.Errorf("message %q does not contain %q", pe.Message, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds providers.Credentials
		want  string
	}{
		{"valid", creds, ""},
		{"missing accessKey", providers.Credentials{"secret": []byte("s")}, `credentials secret is missing key "accessKey"`},
		{"missing secret (the documented scenario)", providers.Credentials{"accessKey": []byte("k")}, `credentials secret is missing key "secret"`},
		{"empty secret", providers.Credentials{"accessKey": []byte("k"), "secret": []byte("")}, `credentials secret key "secret" is empty`},
		{"blank accessKey", providers.Credentials{"accessKey": []byte("\t"), "secret": []byte("s")}, `credentials secret key "accessKey" is empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := New(providers.Options{}).Validate(tc.creds)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if pe := conformance.RequireError(t, err, providers.InvalidCredentials); pe.Message != tc.want {
				t.Errorf("message = %q, want %q", pe.Message, tc.want)
			}
		})
	}
}

func TestLoginUndocumented(t *testing.T) {
	conformance.RunUndocumented(t, func(o providers.Options) providers.Provider { return New(o) }, http.StatusCreated, sentinelCreds)
}

// TestLoginRejections: the partner API's rejection is its 401 with the
// documented error object (a 403 in that shape is its refusal too); any
// other 401 or 403 is RequestBlocked.
func TestLoginRejections(t *testing.T) {
	conformance.RunRejections(t, func(o providers.Options) providers.Provider { return New(o) }, sentinelCreds, conformance.Rejections{
		Documented: map[string]fake.Answer{
			"401":                 fake.JSONAnswer(401, doc401),
			"401 without details": fake.JSONAnswer(401, `{"statusCode": "Error", "error": {"name": "AuthenticationError", "message": "`+conformance.SentinelBody+`"}}`),
			"403 in the shape":    fake.JSONAnswer(403, doc401),
		},
		Undocumented: map[string]fake.Answer{
			"gateway 403":          conformance.GatewayForbidden(403),
			"gateway 401":          conformance.GatewayForbidden(401),
			"error not an object":  fake.JSONAnswer(401, `{"statusCode": "Error", "error": "Unauthorized"}`),
			"a list of the object": fake.JSONAnswer(401, `[`+doc401+`]`),
		},
	})
}

func TestErrorsNeverLeak(t *testing.T) {
	s := conformance.SentinelUser + " " + conformance.SentinelSecret + " " + conformance.SentinelBody
	for _, tc := range []struct {
		status int
		body   string
	}{
		{400, strings.ReplaceAll(doc400, "must have required property 'secret'", s)},
		{400, strings.ReplaceAll(doc400, `"missingProperty": "secret"`, `"missingProperty": "`+conformance.SentinelSecret+`"`)},
		{400, strings.ReplaceAll(doc400, `"missingProperty": "secret"`, `"missingProperty": "x`+conformance.SentinelUser+`"`)},
		{400, strings.ReplaceAll(doc400, `"missingProperty": "secret"`, `"missingProperty": "`+s+`"`)},
		{401, strings.ReplaceAll(doc401, "Service was unable to complete your request.", s)},
		{401, strings.ReplaceAll(doc401, "AccessKeyUnauthorized", conformance.SentinelSecret)},
		{401, strings.ReplaceAll(doc401, "AccessKeyUnauthorized", s)},
		{403, s},
		{409, `{"error": {"message": "` + s + `"}}`},
		{201, conformance.SentinelToken},
		{201, makeJWT(`{"sub": "` + conformance.SentinelToken + `"}`)},
		{201, makeJWT(`{"exp": "` + conformance.SentinelToken + `"}`)},
		{201, makeJWT(`{"exp": 1, "sub": "` + conformance.SentinelToken + `"}`)},
		{201, `"` + conformance.SentinelToken + `.` + conformance.SentinelToken + `"`},
		{201, "<html>" + s + "</html>"},
	} {
		srv := server(t, tc.status, tc.body, nil)
		_, err := New(providers.Options{Now: conformance.Clock}).Login(context.Background(), srv.URL, sentinelCreds)
		if err == nil {
			t.Errorf("HTTP %d %s: no error", tc.status, tc.body)
			continue
		}
		conformance.RequireNoSentinel(t, err.Error())
	}
	for _, c := range []providers.Credentials{
		{"accessKey": []byte(conformance.SentinelUser)},
		{"secret": []byte(conformance.SentinelSecret)},
	} {
		_, err := New(providers.Options{}).Login(context.Background(), "http://127.0.0.1:1", c)
		conformance.RequireError(t, err, providers.InvalidCredentials)
	}
}
