package amplifi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
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
// errors are classified *providers.Error values quoting nothing of the body,
// and a success is a usable token with a sane expiry.
// Seeds are in testdata/fuzz/FuzzParseResponse.
func FuzzParseResponse(f *testing.F) {
	f.Add(0, []byte(docResponse))
	f.Add(0, []byte(`{"success": false, "message": "`+conformance.SentinelBody+`"}`))
	f.Fuzz(func(t *testing.T, n int, body []byte) {
		status := fuzzStatus(n)
		token, err := parseResponse(&login.Reply{StatusCode: status, Header: jsonHeader(), Body: body}, docNow)
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
		if !token.ExpiresAt.After(docNow) || token.ExpiresAt.Sub(docNow) > expiry.MaxLifetime {
			t.Fatalf("insane expiry %s", token.ExpiresAt)
		}
		if token.Extra != nil && (token.Extra[ExtraUserID] == "" && token.Extra[ExtraAFiUserID] == "" || token.Extra[ExtraUserID] == token.Extra[ExtraAFiUserID]) {
			t.Fatalf("Extra = %v", token.Extra)
		}
	})
}

// flatCredentials decodes the fuzz input: key=value lines.
func flatCredentials(encoded []byte) providers.Credentials {
	creds := providers.Credentials{}
	for _, line := range bytes.Split(encoded, []byte("\n")) {
		key, value, _ := bytes.Cut(line, []byte("="))
		creds[string(key)] = value
	}
	return creds
}

// FuzzRequestBody checks the body built from flat credentials (key=value
// lines): it holds exactly the documented field keys given, string values as
// given, deviceData and specifics as objects, and a documented channel with
// its required fields; the same credentials without the keys UsedCredentials
// leaves out give the same result; errors are InvalidCredentials quoting no
// value.
func FuzzRequestBody(f *testing.F) {
	f.Add([]byte("channel=test\ndeviceTag=my_deviceTag\ndeviceData={\"platform\": \"test\"}"))
	f.Add([]byte("channel=internet\nuserName=" + conformance.SentinelUser + "\npassword=" + conformance.SentinelPassword))
	f.Add([]byte("channel=test\ndeviceTag=t\nnote=" + conformance.SentinelSecret))
	f.Fuzz(func(t *testing.T, encoded []byte) {
		creds := flatCredentials(encoded)
		body, err := RequestBody(creds)
		used := UsedCredentials(creds)
		usedBody, usedErr := RequestBody(used)
		if !bytes.Equal(body, usedBody) || (err == nil) != (usedErr == nil) || (err != nil && err.Error() != usedErr.Error()) {
			t.Fatalf("RequestBody of %v gives %s, %v; of its used part %v: %s, %v", creds, body, err, used, usedBody, usedErr)
		}
		if err != nil {
			keysQuoted := false
			for k := range creds {
				keysQuoted = keysQuoted || strings.Contains(k, "SENTINEL")
			}
			if providers.KindOf(err) != providers.InvalidCredentials || (!keysQuoted && strings.Contains(err.Error(), "SENTINEL")) {
				t.Fatalf("err = %v", err)
			}
			return
		}
		if _, ok := creds[CredentialsJSONKey]; ok {
			return // the whole body, checked by FuzzRequestBodyJSON
		}
		sent := checkBody(t, body)
		if len(sent) != len(used) {
			t.Fatalf("body %s has %d members for %d field keys", body, len(sent), len(used))
		}
		for k, v := range used {
			if fieldKeys[k] {
				if _, ok := sent[k].(map[string]any); !ok {
					t.Fatalf("%s is not an object in %s", k, body)
				}
			} else if sent[k] != string(v) {
				t.Fatalf("%s = %#v in %s, want %q", k, sent[k], body, v)
			}
		}
	})
}

// FuzzRequestBodyJSON checks the body built from credentials.json: the
// same members as the input, comments aside.
func FuzzRequestBodyJSON(f *testing.F) {
	f.Add([]byte(docTest))
	f.Add([]byte(`{"channel": "internet", "userName": "` + conformance.SentinelUser + `", "password": "/*` + conformance.SentinelPassword + `*/"} // x`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		body, err := RequestBody(providers.Credentials{CredentialsJSONKey: doc})
		if err != nil {
			if providers.KindOf(err) != providers.InvalidCredentials || strings.Contains(err.Error(), "SENTINEL") {
				t.Fatalf("err = %v", err)
			}
			return
		}
		sent := checkBody(t, body)
		var want map[string]any
		if err := json.Unmarshal(stripComments(doc), &want); err != nil {
			t.Fatalf("accepted %q, which is not JSON without comments: %v", doc, err)
		}
		if !reflect.DeepEqual(sent, want) {
			t.Fatalf("body %s, want %v", body, want)
		}
	})
}

// checkBody decodes a built body and checks its channel's required fields.
func checkBody(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var sent map[string]any
	if err := json.Unmarshal(body, &sent); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	channel, _ := sent["channel"].(string)
	required, ok := requiredFields[channel]
	if !ok {
		t.Fatalf("body %s has no documented channel", body)
	}
	for _, field := range required {
		if v, _ := sent[field].(string); strings.TrimSpace(v) == "" {
			t.Fatalf("body %s lacks %s", body, field)
		}
	}
	return sent
}
