package amltest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/aml"
	"github.com/tokensync/tokensync/providers/aml/amltest"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
)

var (
	now   = conformance.Now
	clock = conformance.Clock
	creds = providers.Credentials{"email": []byte("user@example.com"), "password": []byte("amlWatcher@!#")}
)

// post sends body to the fake's login.
func post(t *testing.T, s *providertest.Server, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(s.URL()+amltest.Path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

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

func TestDocumentedSuccessAnswer(t *testing.T) {
	s := providertest.Start(t, providertest.WithClock(clock))
	status, body := post(t, s, `{"email":"user@example.com","password":"user@1234"}`)
	var answer struct {
		Error  bool   `json:"error"`
		Status string `json:"status"`
		Data   struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || status != 200 || answer.Error || answer.Status != "SUCCESS" {
		t.Errorf("answer %d %s", status, body)
	}
	c := claims(t, answer.Data.AccessToken)
	if c["iat"] != float64(now.Unix()) || c["exp"] != float64(now.Add(3*time.Hour).Unix()) || c["sub"] != "user@example.com" {
		t.Errorf("claims %v", c)
	}
	if s.LoginsFor(amltest.Name, "user@example.com") != 1 {
		t.Error("the login is not counted by email")
	}
}

// TestDataArray: the variant's data is the array of one object the
// response table describes, and tokensync's client takes the token from
// it; faults keep the same shape.
func TestDataArray(t *testing.T) {
	s := providertest.Start(t, providertest.WithClock(clock), providertest.WithFakes(amltest.DataArray))
	status, body := post(t, s, `{"email":"user@example.com","password":"user@1234"}`)
	var answer struct {
		Status string `json:"status"`
		Data   []struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || status != 200 || answer.Status != "SUCCESS" ||
		len(answer.Data) != 1 || answer.Data[0].AccessToken != s.LastToken(amltest.Name) {
		t.Fatalf("answer %d %s", status, body)
	}

	p := aml.New(providers.Options{Now: clock})
	token, err := p.Login(context.Background(), s.URL(), creds)
	if err != nil || token.Value != s.LastToken(amltest.Name) || !token.ExpiresAt.Equal(now.Add(3*time.Hour)) {
		t.Fatalf("Login = %+v, %v", token, err)
	}
	for _, fault := range []providertest.Fault{providertest.NoToken, providertest.HugeBody} {
		s.FailNextWith(amltest.Name, 1, providertest.Failure{Fault: fault})
		_, err := p.Login(context.Background(), s.URL(), creds)
		conformance.RequireError(t, err, providers.InvalidResponse)
	}

	// The default fake answers the sample's object.
	_, body = post(t, providertest.Start(t), `{"email":"user@example.com","password":"user@1234"}`)
	if !strings.Contains(body, `"data": {"access_token":`) {
		t.Errorf("data is not the sample's object: %s", body)
	}
}

func TestDocumentedFailures(t *testing.T) {
	s := providertest.Start(t)
	s.SetValid(amltest.Name, map[string]string{"email": "right@example.com", "password": "right-password"})
	for _, tc := range []struct {
		body     string
		status   int
		contains []string
	}{
		{`{"email":"user@example.com","password":"wrong-password"}`, 401, []string{`"status": "FAIL"`, "Invalid email or password"}},
		{`{"email":"user@example.com","password":"short"}`, 422, []string{`"status": "FAIL"`, "at least 8 characters"}},
		{`{"password":"long enough"}`, 422, []string{"email field is required"}},
		{`email=x`, 400, []string{`"status": "FAIL"`}},
	} {
		status, body := post(t, s, tc.body)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d", tc.body, status, tc.status)
		}
		for _, c := range tc.contains {
			if !strings.Contains(body, c) {
				t.Errorf("%s: body %s lacks %s", tc.body, body, c)
			}
		}
	}
	if s.Logins(amltest.Name) != 0 || s.Attempts(amltest.Name) != 4 {
		t.Errorf("logins %d attempts %d", s.Logins(amltest.Name), s.Attempts(amltest.Name))
	}
	// A second valid set.
	s.SetValid(amltest.Name, map[string]string{"email": "right@example.com"}, map[string]string{"email": "user@example.com"})
	if _, err := aml.New(providers.Options{}).Login(context.Background(), s.URL(), creds); err != nil {
		t.Errorf("second valid set refused: %v", err)
	}
}
