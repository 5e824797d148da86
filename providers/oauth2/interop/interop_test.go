// Package interop logs tokensync's oauth2 provider in to authorization
// servers it was not written with. It is a Go module of its own, so that
// their code stays out of the product's go.mod; make test runs it.
package interop

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	goauth2 "github.com/go-oauth2/oauth2/v4"
	goauth2errors "github.com/go-oauth2/oauth2/v4/errors"
	"github.com/go-oauth2/oauth2/v4/generates"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	jwtv5 "github.com/golang-jwt/jwt/v5"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/jwt"
	"github.com/tokensync/tokensync/providers/oauth2"
)

// An authorization server from the Go ecosystem, github.com/go-oauth2/oauth2
// (v4), run in-process: tokensync's client against an implementation it
// was not written with. Its stores are the two small in-memory ones below,
// so that the test needs none of the module's storage back ends.

type clientStore map[string]*models.Client

func (s clientStore) GetByID(_ context.Context, id string) (goauth2.ClientInfo, error) {
	if c, ok := s[id]; ok {
		return c, nil
	}
	return nil, goauth2errors.ErrInvalidClient
}

type tokenStore struct {
	mu     sync.Mutex
	access map[string]goauth2.TokenInfo
}

func (s *tokenStore) Create(_ context.Context, info goauth2.TokenInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access[info.GetAccess()] = info
	return nil
}
func (s *tokenStore) RemoveByCode(context.Context, string) error    { return nil }
func (s *tokenStore) RemoveByAccess(context.Context, string) error  { return nil }
func (s *tokenStore) RemoveByRefresh(context.Context, string) error { return nil }
func (s *tokenStore) GetByCode(context.Context, string) (goauth2.TokenInfo, error) {
	return nil, errors.New("no codes")
}
func (s *tokenStore) GetByRefresh(context.Context, string) (goauth2.TokenInfo, error) {
	return nil, errors.New("no refresh tokens")
}
func (s *tokenStore) GetByAccess(_ context.Context, access string) (goauth2.TokenInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.access[access], nil
}

// goOAuth2Server starts the server with one confidential client. Its
// client authentication is Basic (its default) or the form; it issues JWT
// access tokens that live lifetime, and refuses the scope "admin".
func goOAuth2Server(t *testing.T, id, secret string, formAuth bool, lifetime time.Duration) (string, *tokenStore) {
	t.Helper()
	tokens := &tokenStore{access: map[string]goauth2.TokenInfo{}}
	manager := manage.NewDefaultManager()
	manager.MapClientStorage(clientStore{id: {ID: id, Secret: secret, Domain: "https://client.example"}})
	manager.MapTokenStorage(tokens)
	manager.MapAccessGenerate(generates.NewJWTAccessGenerate("key-1", []byte("signing-key-of-the-test-server-32b"), jwtv5.SigningMethodHS256))
	manager.SetClientTokenCfg(&manage.Config{AccessTokenExp: lifetime})

	srv := server.NewDefaultServer(manager)
	srv.SetAllowedGrantType(goauth2.ClientCredentials)
	if formAuth {
		srv.SetClientInfoHandler(server.ClientFormHandler)
	}
	srv.SetClientScopeHandler(func(tgr *goauth2.TokenGenerateRequest) (bool, error) {
		return !strings.Contains(" "+tgr.Scope+" ", " admin "), nil
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		_ = srv.HandleTokenRequest(w, r)
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs.URL + "/oauth/token", tokens
}

func TestGoOAuth2Server(t *testing.T) {
	const id, secret = "tokensync", "a-client-secret"
	good := providers.Credentials{oauth2.KeyClientID: []byte(id), oauth2.KeyClientSecret: []byte(secret)}
	for _, auth := range []string{oauth2.ClientAuthBasic, oauth2.ClientAuthPost} {
		t.Run(auth, func(t *testing.T) {
			endpoint, tokens := goOAuth2Server(t, id, secret, auth == oauth2.ClientAuthPost, 2*time.Hour)
			p := configured(t, providers.Options{}, `{"clientAuth": "`+auth+`", "scopes": ["read", "write"]}`)

			before := time.Now()
			token, err := p.Login(context.Background(), endpoint, good)
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if got := token.ExpiresAt.Sub(token.ObtainedAt); got != 2*time.Hour || token.ObtainedAt.Before(before) {
				t.Errorf("lifetime %s (obtained %s), want expires_in's 2h", got, token.ObtainedAt)
			}
			if token.Extra[oauth2.SecretKeyTokenType] != "Bearer" || token.Extra[oauth2.SecretKeyScope] != "read write" {
				t.Errorf("extra = %v", token.Extra)
			}
			info, _ := tokens.GetByAccess(context.Background(), token.Value)
			if info == nil || info.GetClientID() != id || info.GetScope() != "read write" {
				t.Errorf("the server holds %+v for the token", info)
			}
			// The token is the server's JWT; its exp agrees with expires_in.
			claims, err := jwt.ParseClaims(token.Value)
			if err != nil {
				t.Fatalf("not a JWT: %v", err)
			}
			if exp, _ := claims.Expiry(token.ObtainedAt); exp.Sub(token.ExpiresAt).Abs() > 2*time.Second {
				t.Errorf("JWT expiry %s, expires_in expiry %s", exp, token.ExpiresAt)
			}

			wrong := providers.Credentials{oauth2.KeyClientID: []byte(id), oauth2.KeyClientSecret: []byte("not-the-secret")}
			_, err = p.Login(context.Background(), endpoint, wrong)
			if pe := requireKind(t, err, providers.AuthenticationFailed); !strings.Contains(pe.Message, "error invalid_client") {
				t.Errorf("message %q", pe.Message)
			}
			unknown := providers.Credentials{oauth2.KeyClientID: []byte("someone-else"), oauth2.KeyClientSecret: []byte(secret)}
			_, err = p.Login(context.Background(), endpoint, unknown)
			requireKind(t, err, providers.AuthenticationFailed)

			admin := configured(t, providers.Options{}, `{"clientAuth": "`+auth+`", "scopes": ["read", "admin"]}`)
			_, err = admin.Login(context.Background(), endpoint, good)
			if pe := requireKind(t, err, providers.InvalidCredentials); !strings.Contains(pe.Message, "error invalid_scope") {
				t.Errorf("message %q", pe.Message)
			}
		})
	}

	// The other client authentication than the server's: rejected as a client.
	endpoint, _ := goOAuth2Server(t, id, secret, true, time.Hour)
	_, err := configured(t, providers.Options{}, `{"clientAuth": "basic"}`).Login(context.Background(), endpoint, good)
	requireKind(t, err, providers.AuthenticationFailed)
}

func configured(t *testing.T, opts providers.Options, settingsJSON string) providers.Provider {
	t.Helper()
	p, err := oauth2.New(opts).WithSettings([]byte(settingsJSON))
	if err != nil {
		t.Fatalf("WithSettings(%s): %v", settingsJSON, err)
	}
	return p
}

func requireKind(t *testing.T, err error, kind providers.ErrorKind) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != kind {
		t.Fatalf("err = %v, want %s", err, kind)
	}
	return pe
}
