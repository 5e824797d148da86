package conformance

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// RunFake checks that a provider's client and its fake agree, as every
// built-in provider's must (providers/builtin runs it for each): the client,
// configured by the fake's Settings, logs in to the fake with its test
// credentials and with its sentinel credentials, and gets the token issued
// with the lifetime the fake gave it; every scripted fault is classified as
// every provider classifies it, and the next login succeeds; credentials the
// fake does not accept are AuthenticationFailed; the fake's hostile answers
// fail (or, HostileToken, succeed) without quoting them. others are fakes
// the Server serves besides f and the built-in ones (the one f logs in to
// Via, if it is not built in).
func RunFake(t *testing.T, reg providers.Registration, f fake.Provider, others ...fake.Provider) {
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	if reg.Name != f.Name {
		t.Fatalf("the registration is %q, the fake %q", reg.Name, f.Name)
	}
	s := providertest.Start(t, providertest.WithClock(Clock), providertest.WithFakes(append(others, f)...))
	served := f.Name
	if !f.Served() {
		served = f.Via
	}
	const lifetime = 20 * time.Minute
	s.SetLifetime(served, lifetime)
	p := configure(t, reg, f.Settings, providers.Options{Now: Clock})
	endpoint := f.Endpoint(s.URL())
	login := func(creds map[string]string) (*providers.Token, error) {
		c := providers.Credentials{}
		for k, v := range creds {
			c[k] = []byte(v)
		}
		return p.Login(context.Background(), endpoint, c)
	}
	requireLogin := func(t *testing.T, creds map[string]string) {
		t.Helper()
		before := s.Logins(served)
		token, err := login(creds)
		if err != nil {
			t.Fatalf("Login: %v", err)
		}
		if token.Value != s.LastToken(served) || s.Logins(served) != before+1 {
			t.Errorf("the token is not the one the fake issued (%d logins before, %d after)", before, s.Logins(served))
		}
		if got := token.ExpiresAt.Sub(token.ObtainedAt); got != lifetime || !token.ObtainedAt.Equal(Now) {
			t.Errorf("obtained %s, lifetime %s; want %s, the fake's %s", token.ObtainedAt, got, Now, lifetime)
		}
	}

	t.Run("credentials", func(t *testing.T) {
		requireLogin(t, f.Credentials)
		if s.Attempts(served) != 1 {
			t.Errorf("%d attempts for one login", s.Attempts(served))
		}
	})
	t.Run("sentinel credentials", func(t *testing.T) {
		creds := f.SentinelCredentials(SentinelSecret)
		held := false
		for _, v := range creds {
			held = held || strings.Contains(v, SentinelSecret)
		}
		if !held {
			t.Errorf("no sentinel credential holds the sentinel: %v", creds)
		}
		requireLogin(t, creds)
	})
	t.Run("faults", func(t *testing.T) {
		for _, c := range []struct {
			fault  providertest.Fault
			status int
			kind   providers.ErrorKind
		}{
			{providertest.StatusError, 0, providers.ProviderUnavailable},
			{providertest.NotJSON, 0, providers.InvalidResponse},
			{providertest.NoToken, 0, providers.InvalidResponse},
			{providertest.HugeBody, 0, providers.InvalidResponse},
			{providertest.EmptyBody, 0, providers.InvalidResponse},
			{providertest.ResetConnection, 0, providers.ProviderUnavailable},
			{providertest.Redirect, 0, providers.InvalidResponse},
			// A firewall's page or an empty refusal in front of the
			// provider: not the provider's rejection.
			{providertest.NotJSON, http.StatusForbidden, providers.RequestBlocked},
			{providertest.EmptyBody, http.StatusUnauthorized, providers.RequestBlocked},
		} {
			name := c.fault.String()
			if c.status != 0 {
				name += " " + strconv.Itoa(c.status)
			}
			t.Run(name, func(t *testing.T) {
				s.FailNextWith(served, 1, providertest.Failure{Fault: c.fault, Status: c.status})
				_, err := login(f.Credentials)
				RequireError(t, err, c.kind)
				requireLogin(t, f.Credentials)
			})
		}
	})
	t.Run("token over 256 KiB", func(t *testing.T) {
		target, _ := providertest.FakeOf(served)
		for _, o := range append(others, f) {
			if o.Name == served {
				target = o
			}
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fake.WriteJSON(w, target.Success(), target.HugeBody(tokenOverLimit()))
		}))
		defer srv.Close()
		_, err := configure(t, reg, f.Settings, providers.Options{Now: Clock}).Login(context.Background(), f.Endpoint(srv.URL), credentials(f.Credentials))
		if pe := RequireError(t, err, providers.InvalidResponse); !strings.Contains(pe.Message, "larger than 256 KiB") {
			t.Errorf("message %q does not name the 256 KiB limit", pe.Message)
		}
	})
	t.Run("wrong credentials", func(t *testing.T) {
		s.SetValid(served, map[string]string{"a key no login sends": "x"})
		defer s.SetValid(served)
		before := s.Logins(served)
		_, err := login(f.SentinelCredentials(SentinelPassword))
		RequireError(t, err, providers.AuthenticationFailed)
		if s.Logins(served) != before {
			t.Error("a refused login was counted")
		}
	})
	t.Run("hostile answers", func(t *testing.T) {
		fakeOf := map[string]fake.Provider{}
		for _, o := range append(providertest.Fakes(), append(others, f)...) {
			fakeOf[o.Name] = o
		}
		target := fakeOf[served]
		// Hostile answers are made for the real clock, as the operator's.
		p := configure(t, reg, f.Settings, providers.Options{})
		text := strings.Repeat(SentinelBody+" ", 3) + "password invalid " + SentinelBody
		type answer struct {
			name string
			fake.Answer
			ok bool
		}
		var answers []answer
		for _, status := range []int{400, 401, 403, 404, 422, 429, 500, 503} {
			a, ok := target.Hostile(fake.HostileError, status, text)
			answers = append(answers, answer{name: "error " + http.StatusText(status), Answer: a, ok: ok})
		}
		for _, h := range fake.Hostilities() {
			a, ok := target.Hostile(h, 0, text)
			answers = append(answers, answer{name: h.String(), Answer: a, ok: ok})
		}
		for _, a := range answers {
			if !a.ok {
				continue
			}
			t.Run(a.name, func(t *testing.T) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != target.Path {
						http.NotFound(w, r)
						return
					}
					a.Write(w)
				}))
				defer srv.Close()
				token, err := p.Login(context.Background(), f.Endpoint(srv.URL), credentials(f.Credentials))
				if a.name == fake.HostileToken.String() {
					if err != nil || token.Value != text {
						t.Errorf("Login = %v, %v; want the token %q", token, err, text)
					}
					return
				}
				if err == nil {
					t.Fatalf("Login succeeded on %s", a.Body)
				}
				RequireNoSentinel(t, err.Error())
			})
		}
	})
}

// tokenOverLimit is a token one byte over the limit every provider applies.
func tokenOverLimit() string { return strings.Repeat("t", login.MaxTokenBytes+1) }

// credentials are the Secret data of creds.
func credentials(creds map[string]string) providers.Credentials {
	c := providers.Credentials{}
	for k, v := range creds {
		c[k] = []byte(v)
	}
	return c
}

// configure builds reg's provider with opts, configured by settings when
// it is Configurable, as the controller does.
func configure(t *testing.T, reg providers.Registration, settings string, opts providers.Options) providers.Provider {
	t.Helper()
	opts.Name = reg.Name
	p := reg.New(opts)
	c, ok := p.(providers.Configurable)
	if !ok {
		if settings != "" {
			t.Fatalf("the fake of %s has Settings, but the provider is not providers.Configurable", reg.Name)
		}
		return p
	}
	if settings == "" {
		t.Fatalf("%s is providers.Configurable: its fake needs Settings", reg.Name)
	}
	configured, err := c.WithSettings([]byte(settings))
	if err != nil {
		t.Fatalf("the fake's settings of %s: %v", reg.Name, err)
	}
	return configured
}
