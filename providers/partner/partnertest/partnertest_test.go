package partnertest_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers/partner/partnertest"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
)

func do(t *testing.T, s *providertest.Server, method, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+partnertest.Path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestDocumentedSuccessAnswer(t *testing.T) {
	s := providertest.Start(t, providertest.WithClock(conformance.Clock))
	status, header, body := do(t, s, http.MethodPost, `{"accessKey":"k","secret":"s"}`)
	if status != http.StatusCreated || !strings.HasPrefix(header.Get("Content-Type"), "text/plain") {
		t.Errorf("answer %d %v", status, header)
	}
	parts := strings.Split(body, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a JWT", body)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil || c["exp"].(float64)-c["iat"].(float64) != 3600 || c["realm"] != "Partner" {
		t.Errorf("claims %v (%v)", c, err)
	}
	if s.LoginsFor(partnertest.Name, "k") != 1 {
		t.Error("the login is not counted by accessKey")
	}
}

func TestDocumentedFailures(t *testing.T) {
	s := providertest.Start(t)
	s.SetValid(partnertest.Name, map[string]string{"accessKey": "right", "secret": "right"})
	for _, tc := range []struct {
		method, body string
		status       int
		contains     []string
	}{
		{http.MethodPost, `{"accessKey":"k"}`, 400,
			[]string{`"name":"InvalidRequestFormatError"`, `"missingProperty":"secret"`, `must have required property 'secret'`}},
		{http.MethodPost, `{"secret":"s"}`, 400, []string{`"missingProperty":"accessKey"`}},
		{http.MethodPost, `[]`, 400, []string{`"missingProperty":"accessKey"`, `"missingProperty":"secret"`}},
		{http.MethodPost, `{"accessKey":"k","secret":"s"}`, 401, []string{`"reason": "AccessKeyUnauthorized"`, `"name": "AuthenticationError"`}},
		{http.MethodGet, ``, 405, nil},
	} {
		status, _, body := do(t, s, tc.method, tc.body)
		if status != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.body, status, tc.status)
		}
		for _, c := range tc.contains {
			if !strings.Contains(body, c) {
				t.Errorf("%s %s: body %s lacks %s", tc.method, tc.body, body, c)
			}
		}
	}
	if s.Logins(partnertest.Name) != 0 || s.Attempts(partnertest.Name) != 5 {
		t.Errorf("logins %d attempts %d", s.Logins(partnertest.Name), s.Attempts(partnertest.Name))
	}
}
