package partner

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/expiry"
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
// errors are classified *providers.Error values that never quote the
// credentials (only short identifiers from an error body may be quoted),
// and a success is a usable token with a sane expiry.
// Seeds are in testdata/fuzz/FuzzParseResponse.
func FuzzParseResponse(f *testing.F) {
	f.Add(2, []byte(docToken))
	f.Add(1, []byte(doc400))
	f.Add(3, []byte(doc401))
	f.Fuzz(func(t *testing.T, n int, body []byte) {
		status := fuzzStatus(n)
		token, err := parseResponse(&login.Reply{StatusCode: status, Header: jsonHeader(), Body: body}, conformance.Now, sentinelCreds)
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
			for _, v := range sentinelCreds {
				if strings.Contains(pe.Message, string(v)) {
					t.Fatalf("message %q quotes a credential", pe.Message)
				}
			}
			if status < 300 && strings.Contains(pe.Message, "SENTINEL") {
				t.Fatalf("message %q quotes a 2xx body", pe.Message)
			}
			return
		}
		if status >= 300 {
			t.Fatalf("HTTP %d accepted", status)
		}
		if token.Value == "" || login.CheckTokenValue("t", token.Value) != nil {
			t.Fatalf("unusable token %q", token.Value)
		}
		if !token.ExpiresAt.After(conformance.Now) || token.ExpiresAt.Sub(conformance.Now) > expiry.MaxLifetime {
			t.Fatalf("insane expiry %s", token.ExpiresAt)
		}
	})
}

// FuzzRequestBody checks that the body carries exactly the credentials, or
// the error names keys only.
func FuzzRequestBody(f *testing.F) {
	f.Add(docAccessKey, docSecret)
	f.Add(conformance.SentinelUser, conformance.SentinelSecret)
	f.Fuzz(func(t *testing.T, accessKey, secret string) {
		body, err := requestBody(providers.Credentials{"accessKey": []byte(accessKey), "secret": []byte(secret)})
		if err != nil {
			if providers.KindOf(err) != providers.InvalidCredentials || strings.Contains(err.Error(), "SENTINEL") {
				t.Fatalf("err = %v", err)
			}
			return
		}
		var sent map[string]string
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if len(sent) != 2 || sent["accessKey"] != accessKey || sent["secret"] != secret {
			t.Fatalf("body %q does not carry the credentials", body)
		}
	})
}
