package aml

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
)

// fuzzStatus maps any int onto the statuses parseResponse receives from
// SendJSON: 2xx and 4xx.
func fuzzStatus(n int) int {
	if n < 0 {
		n = -(n + 1)
	}
	if n%2 == 0 {
		return 200 + n/2%100
	}
	return 400 + n/2%100
}

// jsonHeader is what the documented answers carry.
func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

// FuzzParseResponse checks the response parser's invariants: no panic,
// errors are classified *providers.Error values quoting nothing of the body,
// and a success is a usable token expiring within the documented 3 hours.
// Seeds are in testdata/fuzz/FuzzParseResponse.
func FuzzParseResponse(f *testing.F) {
	f.Add(0, []byte(docSuccess))
	f.Add(0, []byte(`{"error": false, "status": "SUCCESS", "data": [{"access_token": "`+conformance.SentinelToken+`"}]}`))
	f.Add(3, []byte(`{"error": "Invalid email or password `+conformance.SentinelBody+`", "status": "FAIL", "data": []}`))
	f.Fuzz(func(t *testing.T, n int, body []byte) {
		status := fuzzStatus(n)
		token, err := parseResponse(&login.Reply{StatusCode: status, Header: jsonHeader(), Body: body}, conformance.Now)
		if err != nil {
			var pe *providers.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err is %T, not *providers.Error", err)
			}
			switch pe.Kind {
			case providers.InvalidCredentials, providers.AuthenticationFailed, providers.RequestBlocked, providers.InvalidResponse:
			default:
				t.Fatalf("unexpected kind %s", pe.Kind)
			}
			if strings.Contains(pe.Message, "SENTINEL") {
				t.Fatalf("message %q quotes the body", pe.Message)
			}
			return
		}
		if status >= 300 {
			t.Fatalf("HTTP %d accepted", status)
		}
		if token.Value == "" || login.CheckTokenValue("t", token.Value) != nil {
			t.Fatalf("unusable token %q", token.Value)
		}
		if !token.ObtainedAt.Equal(conformance.Now) || !token.ExpiresAt.After(conformance.Now) || token.ExpiresAt.After(conformance.Now.Add(TokenValidity)) {
			t.Fatalf("insane times %+v", token)
		}
	})
}

// FuzzRequestBody checks that the body carries exactly the credentials, or
// the error names keys only.
func FuzzRequestBody(f *testing.F) {
	f.Add("user@example.com", "amlWatcher@!#")
	f.Add(conformance.SentinelUser, conformance.SentinelPassword)
	f.Fuzz(func(t *testing.T, email, password string) {
		body, err := requestBody(providers.Credentials{"email": []byte(email), "password": []byte(password)})
		if err != nil {
			if providers.KindOf(err) != providers.InvalidCredentials {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(err.Error(), "SENTINEL") {
				t.Fatalf("message %q quotes a value", err)
			}
			return
		}
		var sent map[string]string
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if len(sent) != 2 || sent["email"] != email || sent["password"] != password {
			t.Fatalf("body %q does not carry the credentials", body)
		}
	})
}
