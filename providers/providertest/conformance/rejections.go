package conformance

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// Rejections are a provider's rejections of the credentials, from its
// documentation: the only answers that are AuthenticationFailed, the one
// kind that counts toward the lockout.
type Rejections struct {
	// Documented are the documented rejections, each with a name.
	Documented map[string]fake.Answer
	// Undocumented are 401 and 403 answers in JSON, but not in the
	// provider's shape (an API gateway's {"message": "Forbidden"}): each
	// is RequestBlocked. Provider http, which has no documentation to go
	// by, takes any JSON object or array for its API's, and has none.
	Undocumented map[string]fake.Answer
}

// RunRejections checks that each documented rejection is
// AuthenticationFailed, and that a 401 or 403 not in the provider's shape
// (an HTML page, an empty body, text, a JSON document of another shape,
// what a web application firewall or a proxy answers) is RequestBlocked,
// with a message naming the status and the media type only.
func RunRejections(t *testing.T, newProvider NewProvider, creds providers.Credentials, r Rejections) {
	login := func(t *testing.T, a fake.Answer) error {
		t.Helper()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { a.Write(w) }))
		defer srv.Close()
		_, err := newProvider(providers.Options{Now: Clock}).Login(context.Background(), srv.URL, creds)
		return err
	}
	if len(r.Documented) == 0 {
		t.Fatal("no documented rejection: every provider has one")
	}
	for name, a := range r.Documented {
		t.Run("documented "+name, func(t *testing.T) {
			RequireError(t, login(t, a), providers.AuthenticationFailed)
		})
	}
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		blocked := []struct {
			name   string
			answer fake.Answer
			kind   string // what the message calls the answer
		}{
			{"HTML", fake.Answer{Status: status, ContentType: "text/html; charset=utf-8", Body: "<html><body>Access denied " + SentinelBody + "</body></html>"}, "a text/html answer"},
			{"empty", fake.Answer{Status: status, ContentType: "text/html"}, "an empty answer"},
			{"blank", fake.Answer{Status: status, ContentType: "application/json", Body: " \r\n"}, "an empty answer"},
			{"text", fake.Answer{Status: status, ContentType: "text/plain", Body: "Forbidden " + SentinelBody}, "a text/plain answer"},
			{"JSON string", fake.JSONAnswer(status, `"Forbidden `+SentinelBody+`"`), "an application/json answer"},
		}
		for _, b := range blocked {
			t.Run(http.StatusText(status)+" "+b.name, func(t *testing.T) {
				pe := RequireError(t, login(t, b.answer), providers.RequestBlocked)
				if want := BlockedMessage(status, b.kind); !strings.HasPrefix(pe.Message, want) {
					t.Errorf("message %q, want it to start %q", pe.Message, want)
				}
			})
		}
	}
	for name, a := range r.Undocumented {
		t.Run("undocumented "+name, func(t *testing.T) {
			if a.Status != http.StatusUnauthorized && a.Status != http.StatusForbidden {
				t.Fatalf("HTTP %d: only a 401 or 403 is RequestBlocked", a.Status)
			}
			RequireError(t, login(t, a), providers.RequestBlocked)
		})
	}
}

// GatewayForbidden is what API gateways and firewalls in front of an API
// answer in JSON (AWS API Gateway's 403): not a provider's own rejection
// unless its documentation has that shape.
func GatewayForbidden(status int) fake.Answer {
	return fake.JSONAnswer(status, `{"message": "Forbidden `+SentinelBody+`"}`)
}
