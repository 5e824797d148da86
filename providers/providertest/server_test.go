package providertest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/aml"
	"github.com/tokensync/tokensync/providers/amplifi"
	"github.com/tokensync/tokensync/providers/oauth2"
	"github.com/tokensync/tokensync/providers/partner"
	"github.com/tokensync/tokensync/providers/providertest"
)

var (
	now   = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	clock = func() time.Time { return now }
)

var (
	amlCreds     = providers.Credentials{"email": []byte("user@example.com"), "password": []byte("amlWatcher@!#")}
	partnerCreds = providers.Credentials{"accessKey": []byte("986d8167a9b9a15e37db4ab4ad50877b01347a94"), "secret": []byte("79bPqahzbeYuIgyod1GBjsBy38wN7KuBBNNmN/emwjFCuAfq")}
	ampliFiCreds = providers.Credentials{"channel": []byte("test"), "deviceTag": []byte("my_deviceTag"), "deviceData": []byte(`{"platform": "test"}`)}
	oauth2Creds  = providers.Credentials{"clientId": []byte("tokensync:client"), "clientSecret": []byte("s3cr+t/=")}
)

// client pairs a fake with tokensync's client and credentials. The Server's
// mechanics are tested with the four providers with a wire format of their
// own; conformance.RunFake checks every provider against its fake.
type client struct {
	name  string
	login providers.Provider
	creds providers.Credentials
}

func clients(o providers.Options) []client {
	return []client{
		{providertest.AML, aml.New(o), amlCreds},
		{providertest.AmpliFi, amplifi.New(o), ampliFiCreds},
		{providertest.Partner, partner.New(o), partnerCreds},
		{providertest.OAuth2, atPath{oauth2.New(o), providertest.OAuth2Path}, oauth2Creds},
	}
}

// atPath logs in at a path of the base URL the tests use: an OAuth2
// endpoint is the token URL itself.
type atPath struct {
	providers.Provider
	path string
}

func (a atPath) Login(ctx context.Context, endpoint string, creds providers.Credentials) (*providers.Token, error) {
	return a.Provider.Login(ctx, endpoint+a.path, creds)
}

// do sends a raw request to the fake.
func do(t *testing.T, method, url, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
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

func TestClientsLogIn(t *testing.T) {
	s := providertest.Start(t, providertest.WithClock(clock))
	s.SetLifetime(providertest.Partner, 10*time.Minute)
	for _, c := range clients(providers.Options{Now: clock}) {
		t.Run(c.name, func(t *testing.T) {
			token, err := c.login.Login(context.Background(), s.URL(), c.creds)
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			want := map[string]time.Duration{providertest.AML: 3 * time.Hour, providertest.AmpliFi: time.Hour, providertest.Partner: 10 * time.Minute, providertest.OAuth2: time.Hour}[c.name]
			if got := token.ExpiresAt.Sub(now); got != want {
				t.Errorf("lifetime %s, want %s", got, want)
			}
			if token.Value != s.LastToken(c.name) {
				t.Errorf("token %q is not the last issued %q", token.Value, s.LastToken(c.name))
			}
			if s.Logins(c.name) != 1 || s.Attempts(c.name) != 1 {
				t.Errorf("logins %d, attempts %d", s.Logins(c.name), s.Attempts(c.name))
			}
		})
	}
	if s.LoginsFor(providertest.AML, "user@example.com") != 1 || s.LoginsFor(providertest.AmpliFi, "my_deviceTag") != 1 ||
		s.LoginsFor(providertest.Partner, "986d8167a9b9a15e37db4ab4ad50877b01347a94") != 1 || s.LoginsFor(providertest.OAuth2, "tokensync:client") != 1 ||
		s.LoginsFor(providertest.AML, "other") != 0 {
		t.Error("LoginsFor miscounts")
	}
}

func TestWrongCredentials(t *testing.T) {
	s := providertest.Start(t)
	s.SetValid(providertest.AML, map[string]string{"email": "right@example.com", "password": "right-password"})
	s.SetValid(providertest.Partner, map[string]string{"accessKey": "right", "secret": "right"})
	s.SetValid(providertest.AmpliFi, map[string]string{"deviceTag": "right"})
	s.SetValid(providertest.OAuth2, map[string]string{"clientId": "right", "clientSecret": "right"})

	for _, c := range clients(providers.Options{}) {
		_, err := c.login.Login(context.Background(), s.URL(), c.creds)
		if providers.KindOf(err) != providers.AuthenticationFailed {
			t.Errorf("%s: err = %v, want AuthenticationFailed", c.name, err)
		}
		if s.Logins(c.name) != 0 {
			t.Errorf("%s: a login was counted", c.name)
		}
	}

	// A second valid set.
	s.SetValid(providertest.AML, map[string]string{"email": "right@example.com"}, map[string]string{"email": "user@example.com"})
	if _, err := aml.New(providers.Options{}).Login(context.Background(), s.URL(), amlCreds); err != nil {
		t.Errorf("second valid set refused: %v", err)
	}
}

func TestFailNext(t *testing.T) {
	s := providertest.Start(t)
	s.FailNextWith(providertest.AML, 2, providertest.Failure{Status: http.StatusServiceUnavailable, RetryAfter: "7"})
	s.FailNext(providertest.AML, 1, http.StatusTooManyRequests)
	p := aml.New(providers.Options{})
	for i, want := range []time.Duration{7 * time.Second, 7 * time.Second, 0} {
		_, err := p.Login(context.Background(), s.URL(), amlCreds)
		if providers.KindOf(err) != providers.ProviderUnavailable || providers.RetryAfterOf(err) != want {
			t.Errorf("attempt %d: err = %v (retry after %s)", i+1, err, providers.RetryAfterOf(err))
		}
	}
	if _, err := p.Login(context.Background(), s.URL(), amlCreds); err != nil {
		t.Errorf("after the failures: %v", err)
	}
	if s.Attempts(providertest.AML) != 4 || s.Logins(providertest.AML) != 1 {
		t.Errorf("attempts %d logins %d", s.Attempts(providertest.AML), s.Logins(providertest.AML))
	}
	// Scripted status errors of the documented kinds.
	s.FailNext(providertest.Partner, 1, http.StatusUnauthorized)
	s.FailNext(providertest.Partner, 1, http.StatusBadRequest)
	for _, want := range []providers.ErrorKind{providers.AuthenticationFailed, providers.InvalidCredentials} {
		_, err := partner.New(providers.Options{}).Login(context.Background(), s.URL(), partnerCreds)
		if providers.KindOf(err) != want {
			t.Errorf("partner: err = %v, want %s", err, want)
		}
	}
}

func TestFailEvery(t *testing.T) {
	s := providertest.Start(t)
	s.FailEvery(providertest.Partner, 2, providertest.Failure{Status: http.StatusServiceUnavailable})
	p := partner.New(providers.Options{})
	var failed int
	for range 10 {
		if _, err := p.Login(context.Background(), s.URL(), partnerCreds); err != nil {
			if providers.KindOf(err) != providers.ProviderUnavailable {
				t.Fatalf("err = %v", err)
			}
			failed++
		}
	}
	if failed != 5 || s.Logins(providertest.Partner) != 5 || s.Attempts(providertest.Partner) != 10 {
		t.Errorf("failed %d, logins %d, attempts %d", failed, s.Logins(providertest.Partner), s.Attempts(providertest.Partner))
	}
	s.FailEvery(providertest.Partner, 0, providertest.Failure{})
	for range 3 {
		if _, err := p.Login(context.Background(), s.URL(), partnerCreds); err != nil {
			t.Errorf("after FailEvery(0): %v", err)
		}
	}
}

func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		fault providertest.Fault
		kind  providers.ErrorKind
	}{
		{providertest.StatusError, providers.ProviderUnavailable},
		{providertest.NotJSON, providers.InvalidResponse},
		{providertest.NoToken, providers.InvalidResponse},
		{providertest.HugeBody, providers.InvalidResponse},
		{providertest.EmptyBody, providers.InvalidResponse},
		{providertest.ResetConnection, providers.ProviderUnavailable},
		{providertest.Redirect, providers.InvalidResponse},
	} {
		s := providertest.Start(t)
		for _, c := range clients(providers.Options{}) {
			s.FailNextWith(c.name, 1, providertest.Failure{Fault: tc.fault})
			_, err := c.login.Login(context.Background(), s.URL(), c.creds)
			if providers.KindOf(err) != tc.kind {
				t.Errorf("fault %d, %s: err = %v, want %s", tc.fault, c.name, err, tc.kind)
			}
			if _, err := c.login.Login(context.Background(), s.URL(), c.creds); err != nil {
				t.Errorf("fault %d, %s: the next login failed: %v", tc.fault, c.name, err)
			}
		}
	}
}

func TestLatencyAndHang(t *testing.T) {
	s := providertest.Start(t)
	s.SetLatency(providertest.AmpliFi, 300*time.Millisecond)
	p := amplifi.New(providers.Options{})
	start := time.Now()
	if _, err := p.Login(context.Background(), s.URL(), ampliFiCreds); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Errorf("answered in %s despite 300ms latency", elapsed)
	}
	short := amplifi.New(providers.Options{Timeout: 100 * time.Millisecond})
	if _, err := short.Login(context.Background(), s.URL(), ampliFiCreds); providers.KindOf(err) != providers.ProviderUnavailable {
		t.Errorf("err = %v, want a timeout", err)
	}
	s.SetLatency(providertest.AmpliFi, 0)

	s.Hang(providertest.AmpliFi, true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.Login(ctx, s.URL(), ampliFiCreds); providers.KindOf(err) != providers.ProviderUnavailable {
		t.Errorf("err = %v, want ProviderUnavailable", err)
	}
	s.Hang(providertest.AmpliFi, false)
	if _, err := p.Login(context.Background(), s.URL(), ampliFiCreds); err != nil {
		t.Errorf("after Hang(false): %v", err)
	}
}

func TestCloseReleasesHangingRequests(t *testing.T) {
	s, err := providertest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Hang(providertest.Partner, true)
	done := make(chan error, 1)
	go func() {
		_, err := partner.New(providers.Options{}).Login(context.Background(), s.URL(), partnerCreds)
		done <- err
	}()
	for s.Attempts(providertest.Partner) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	select {
	case err := <-done:
		if providers.KindOf(err) != providers.ProviderUnavailable {
			t.Errorf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the hanging request outlived Close")
	}
	s.Close() // twice is fine
}

func TestLifetime(t *testing.T) {
	s := providertest.Start(t, providertest.WithClock(clock),
		providertest.WithLifetime(providertest.AML, 90*time.Second),
		providertest.WithLifetime(providertest.AmpliFi, 2*time.Hour))
	for _, c := range clients(providers.Options{Now: clock}) {
		token, err := c.login.Login(context.Background(), s.URL(), c.creds)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := map[string]time.Duration{providertest.AML: 90 * time.Second, providertest.AmpliFi: 2 * time.Hour, providertest.Partner: time.Hour, providertest.OAuth2: time.Hour}[c.name]
		if got := token.ExpiresAt.Sub(now); got != want {
			t.Errorf("%s: lifetime %s, want %s", c.name, got, want)
		}
	}
	// Expired tokens are for fault tests.
	s.SetLifetime(providertest.Partner, -time.Minute)
	if _, err := partner.New(providers.Options{Now: clock}).Login(context.Background(), s.URL(), partnerCreds); providers.KindOf(err) != providers.InvalidResponse {
		t.Errorf("expired token: err = %v", err)
	}
}

func TestConcurrentLoginsAreUniqueAndCounted(t *testing.T) {
	s := providertest.Start(t)
	s.FailEvery(providertest.AML, 3, providertest.Failure{Status: 503})
	var (
		mu     sync.Mutex
		tokens = map[string]bool{}
		wg     sync.WaitGroup
		ok     = map[string]int{}
	)
	for i := range 80 {
		c := clients(providers.Options{})[i%4]
		creds := providers.Credentials{}
		for k, v := range c.creds {
			creds[k] = v
		}
		id := fmt.Sprintf("id-%d", i%4)
		switch c.name {
		case providertest.AML:
			creds["email"] = []byte(id)
		case providertest.Partner:
			creds["accessKey"] = []byte(id)
		case providertest.AmpliFi:
			creds["deviceTag"] = []byte(id)
		case providertest.OAuth2:
			creds["clientId"] = []byte(id)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			token, err := c.login.Login(context.Background(), s.URL(), creds)
			s.Logins(c.name) // read while others write
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if tokens[token.Value] {
				t.Errorf("token issued twice")
			}
			tokens[token.Value] = true
			ok[c.name]++
		}()
	}
	wg.Wait()
	total := 0
	for _, c := range clients(providers.Options{}) {
		name := c.name
		perID := 0
		for i := range 4 {
			perID += s.LoginsFor(name, fmt.Sprintf("id-%d", i))
		}
		if s.Attempts(name) != 20 || s.Logins(name) != ok[name] || perID != ok[name] {
			t.Errorf("%s: attempts %d, logins %d, per id %d, succeeded %d", name, s.Attempts(name), s.Logins(name), perID, ok[name])
		}
		total += ok[name]
	}
	if ok[providertest.AML] != 14 || len(tokens) != total {
		t.Errorf("AML succeeded %d times (want 14 with every 3rd failing), %d distinct tokens of %d", ok[providertest.AML], len(tokens), total)
	}
	s.ResetCounters()
	if s.Attempts(providertest.AML) != 0 || s.Logins(providertest.AML) != 0 || s.LoginsFor(providertest.AML, "id-0") != 0 || s.LastToken(providertest.AML) != "" {
		t.Error("ResetCounters left counts")
	}
}

func TestHandlerAndAddress(t *testing.T) {
	s := providertest.New()
	defer s.Close()
	if s.URL() != "" || s.Addr() != "" {
		t.Errorf("URL %q before Listen", s.URL())
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	if _, err := aml.New(providers.Options{}).Login(context.Background(), srv.URL, amlCreds); err != nil {
		t.Errorf("through Handler: %v", err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err == nil {
		t.Error("listened twice")
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL = %q", s.URL())
	}
	if _, err := providertest.NewServer("256.0.0.1:0"); err == nil {
		t.Error("listened on an invalid address")
	}
}

func TestUnknownProviderPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	providertest.New().Logins("nope")
}
