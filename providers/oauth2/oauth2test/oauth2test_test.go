package oauth2test_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers/oauth2/oauth2test"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
)

func claims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a JWT", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRFC6749Answers: the token endpoint answers as RFC 6749 says.
func TestRFC6749Answers(t *testing.T) {
	s := providertest.Start(t, providertest.WithClock(conformance.Clock))
	s.SetValid(oauth2test.Name, map[string]string{"clientId": "c", "clientSecret": "s"})
	post := func(form, user, pass string) (int, http.Header, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+oauth2test.Path, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header, body
	}
	status, _, body := post("grant_type=client_credentials&scope=a+b", "c", "s")
	if status != 200 || body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) || body["scope"] != "a b" {
		t.Errorf("Basic: %d %v", status, body)
	}
	if c := claims(t, body["access_token"].(string)); c["sub"] != "c" || c["exp"].(float64)-c["iat"].(float64) != 3600 {
		t.Errorf("claims %v", c)
	}
	if status, _, body = post("grant_type=client_credentials&client_id=c&client_secret=s", "", ""); status != 200 {
		t.Errorf("post: %d %v", status, body)
	}
	for _, tc := range []struct {
		form, user, pass string
		status           int
		code             string
	}{
		{"grant_type=client_credentials", "c", "wrong", 401, "invalid_client"},
		{"grant_type=client_credentials", "", "", 401, "invalid_client"},
		{"grant_type=client_credentials&client_id=c&client_secret=s", "c", "s", 400, "invalid_request"},
		{"grant_type=password&username=u&password=p", "c", "s", 400, "unsupported_grant_type"},
	} {
		status, header, body := post(tc.form, tc.user, tc.pass)
		if status != tc.status || body["error"] != tc.code || (status == 401) != (header.Get("WWW-Authenticate") != "") {
			t.Errorf("%s as %s: %d %v", tc.form, tc.user, status, body)
		}
	}
}
