package amplifitest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/amplifi"
	"github.com/tokensync/tokensync/providers/amplifi/amplifitest"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
)

var testCreds = providers.Credentials{"channel": []byte("test"), "deviceTag": []byte("my_deviceTag"), "deviceData": []byte(`{"platform": "test"}`)}

func do(t *testing.T, s *providertest.Server, method, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+amplifitest.Path, strings.NewReader(body))
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
	return resp.StatusCode, string(b)
}

func TestDocumentedSuccessAnswer(t *testing.T) {
	s := providertest.Start(t, providertest.WithClock(conformance.Clock))
	status, body := do(t, s, http.MethodPut, `{"channel":"test","deviceTag":"my_deviceTag","deviceData":{"platform":"test"}}`)
	var answer map[string]any
	if err := json.Unmarshal([]byte(body), &answer); err != nil || status != 200 {
		t.Fatalf("answer %d %s", status, body)
	}
	if answer["success"] != true || len(answer["token"].(string)) != 64 ||
		answer["dtsExpiry"] != "2024-03-01T13:00:00.000Z" || answer["userId"] != answer["AFiUserId"] {
		t.Errorf("answer %s", body)
	}
}

func TestDocumentedCredentials(t *testing.T) {
	s := providertest.Start(t)
	p := amplifi.New(providers.Options{})
	for id, creds := range map[string]providers.Credentials{
		"ali":                     {"userName": []byte("ali"), "password": []byte("qa"), "channel": []byte("internet")},
		"unique id of the device": {"uuid": []byte("unique id of the device"), "deviceTagOpen": []byte("a string generated on the mobile phone"), "channel": []byte("android"), "specifics": []byte(`{"serial":"SN of the phone","platform":"whatever","model":"SONY"}`)},
		"my_deviceTag":            testCreds,
	} {
		token, err := p.Login(context.Background(), s.URL(), creds)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if token.Extra["userId"] == "" || s.LoginsFor(amplifitest.Name, id) != 1 {
			t.Errorf("%s: Extra %v, LoginsFor %d", id, token.Extra, s.LoginsFor(amplifitest.Name, id))
		}
	}
}

func TestDocumentedFailures(t *testing.T) {
	s := providertest.Start(t)
	s.SetValid(amplifitest.Name, map[string]string{"deviceTag": "right"})
	for _, tc := range []struct {
		method, body string
		status       int
		contains     []string
	}{
		{http.MethodPut, `{"channel":"test","deviceTag":"wrong"}`, 200, []string{`"success":false`}},
		{http.MethodPut, `{"channel":"fax"}`, 400, []string{`"success":false`}},
		{http.MethodPut, `{"channel":"internet","userName":"ali"}`, 400, []string{`'password'`}},
		// A schema the documentation requires but its examples do not send.
		{http.MethodPut, `{"channel":"mobile","deviceTag":"d"}`, 400, []string{`"success":false`}},
		{http.MethodPost, `{}`, 405, nil},
	} {
		status, body := do(t, s, tc.method, tc.body)
		if status != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.body, status, tc.status)
		}
		for _, c := range tc.contains {
			if !strings.Contains(body, c) {
				t.Errorf("%s %s: body %s lacks %s", tc.method, tc.body, body, c)
			}
		}
	}
	if s.Logins(amplifitest.Name) != 0 {
		t.Errorf("logins %d", s.Logins(amplifitest.Name))
	}
}
