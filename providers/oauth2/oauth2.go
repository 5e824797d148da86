// Package oauth2 logs in with the OAuth 2.0 client credentials grant (RFC
// 6749 §4.4): POST {endpoint} (the token URL) with grant_type
// client_credentials, the client authenticated by HTTP Basic or in the
// form, returns {"access_token", "token_type", "expires_in", "scope"}.
//
// The protocol is golang.org/x/oauth2/clientcredentials's; tokensync only
// gives it its own HTTP client (endpoint policy, limits, no redirects),
// reads the expiry on its own clock, and classifies the answers.
package oauth2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	xoauth2 "golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/expiry"
	"github.com/tokensync/tokensync/providers/internal/jwt"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/internal/settings"
)

// Registration describes the OAuth2 client credentials login to the
// operator. spec.endpoint is the token URL; it has no default.
var Registration = providers.Registration{
	Name:         "oauth2",
	Title:        "the OAuth 2.0 client credentials grant (RFC 6749 §4.4) of any identity provider, configured by spec.oauth2",
	EndpointIs:   "the token URL",
	SettingsHint: "an empty one (oauth2: {}) takes the defaults: HTTP Basic client authentication, no scope",
	CredentialKeys: []providers.CredentialKey{
		{Name: KeyClientID, Description: "the OAuth2 client's id"},
		{Name: KeyClientSecret, Description: "the OAuth2 client's secret"},
	},
	New: func(o providers.Options) providers.Provider { return New(o) },
}

const (
	// KeyClientID and KeyClientSecret are the credentials Secret's keys.
	KeyClientID     = "clientId"
	KeyClientSecret = "clientSecret"
	// SecretKeyTokenType and SecretKeyScope are the target Secret's keys
	// next to the token: token_type and scope, when the answer has them.
	SecretKeyTokenType = "tokenType"
	SecretKeyScope     = "scope"

	displayName = "the OAuth2 token endpoint"
	checkKeys   = "clientId and clientSecret"
	block       = "spec.oauth2"
	// maxNameLen bounds identifiers quoted from an error answer.
	maxNameLen = 64
)

// Client authentication methods (spec.oauth2.clientAuth).
const (
	// ClientAuthBasic sends the client id and secret in an HTTP Basic
	// Authorization header, form-encoded first (RFC 6749 §2.3.1).
	ClientAuthBasic = "basic"
	// ClientAuthPost sends them as client_id and client_secret form parameters.
	ClientAuthPost = "post"
)

// Settings is spec.oauth2, under the same JSON names.
type Settings struct {
	// Scopes are sent space-separated as the scope parameter.
	Scopes []string `json:"scopes,omitempty"`
	// Parameters are further form parameters (audience, resource, ...).
	Parameters map[string]string `json:"parameters,omitempty"`
	// ClientAuth is ClientAuthBasic (when empty) or ClientAuthPost.
	ClientAuth string `json:"clientAuth,omitempty"`
	// DefaultLifetime is the tokens' lifetime when the answer has no
	// expires_in and the token is not a JWT with an exp claim.
	DefaultLifetime settings.Duration `json:"defaultLifetime,omitempty"`
}

// reservedParameters are set by the grant itself; clientcredentials would
// let grant_type be overridden, which is never what a TokenRequest means.
var reservedParameters = []string{"grant_type", "scope", "client_id", "client_secret"}

// Provider logs in with the client credentials grant.
type Provider struct {
	client   *http.Client
	now      func() time.Time
	settings Settings
}

var (
	_ providers.Provider     = (*Provider)(nil)
	_ providers.Validator    = (*Provider)(nil)
	_ providers.Configurable = (*Provider)(nil)
	_ providers.LoginURLer   = (*Provider)(nil)
)

// New returns a provider with the default settings (Basic client
// authentication, no scope).
func New(opts providers.Options) *Provider {
	return &Provider{client: login.HTTPClient(opts), now: login.Clock(opts)}
}

// WithSettings returns a provider for spec.oauth2's JSON.
func (p *Provider) WithSettings(data []byte) (providers.Provider, error) {
	var s Settings
	if err := settings.Decode(block, data, &s); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	configured := *p
	configured.settings = s
	return &configured, nil
}

// check refuses settings the CRD's validation also refuses, for settings
// that did not come through it.
func (s Settings) check() error {
	switch s.ClientAuth {
	case "", ClientAuthBasic, ClientAuthPost:
	default:
		return settings.Invalid("%s.clientAuth must be %s or %s", block, ClientAuthBasic, ClientAuthPost)
	}
	for _, scope := range s.Scopes {
		if scope == "" || strings.ContainsAny(scope, " \t\r\n\"\\") {
			return settings.Invalid("%s.scopes must be scope tokens without spaces or quotes", block)
		}
	}
	for _, name := range reservedParameters {
		if _, ok := s.Parameters[name]; ok {
			return settings.Invalid("%s.parameters must not set %s: the client credentials grant sets it (scopes go in %s.scopes)", block, name, block)
		}
	}
	return nil
}

// Validate checks that clientId and clientSecret are present and not blank.
func (p *Provider) Validate(creds providers.Credentials) error {
	return login.RequireKeys(creds, KeyClientID, KeyClientSecret)
}

// LoginURL returns the URL a login at endpoint is sent to: the endpoint
// itself, the token URL.
func (p *Provider) LoginURL(endpoint string) (string, error) {
	return login.JoinURL(endpoint, "")
}

// Login asks the token endpoint for a token with the client's credentials.
func (p *Provider) Login(ctx context.Context, endpoint string, creds providers.Credentials) (*providers.Token, error) {
	if err := p.Validate(creds); err != nil {
		return nil, err
	}
	tokenURL, err := p.LoginURL(endpoint)
	if err != nil {
		return nil, err
	}
	cfg := clientcredentials.Config{
		ClientID:     string(creds[KeyClientID]),
		ClientSecret: string(creds[KeyClientSecret]),
		TokenURL:     tokenURL,
		Scopes:       p.settings.Scopes,
		AuthStyle:    xoauth2.AuthStyleInHeader,
	}
	if p.settings.ClientAuth == ClientAuthPost {
		cfg.AuthStyle = xoauth2.AuthStyleInParams
	}
	if len(p.settings.Parameters) > 0 {
		cfg.EndpointParams = url.Values{}
		for k, v := range p.settings.Parameters {
			cfg.EndpointParams.Set(k, v)
		}
	}

	// The whole exchange is bounded by the context rather than by a client
	// timeout: http.Client replaces a transport's error with its own on a
	// timeout, and the classification in login.Transport would be lost.
	timeout := p.client.Timeout
	if timeout <= 0 {
		timeout = login.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	status := 0
	client := &http.Client{
		Transport: &login.Transport{
			Provider: displayName, Base: p.client.Transport, Now: p.now,
			Seen: func(r *login.Reply) { status = r.StatusCode },
		},
		CheckRedirect: login.NoRedirects,
	}
	// Lifetimes count from before the request is sent, so that time spent
	// waiting for the answer never lengthens a token.
	obtainedAt := p.now()
	tok, err := cfg.Token(context.WithValue(ctx, xoauth2.HTTPClient, client))
	if err != nil {
		return nil, failure(ctx, err, status, hostOf(tokenURL), creds)
	}
	token, err := p.token(tok, status, obtainedAt)
	if err != nil {
		return nil, err
	}
	// A lifetime shorter than the exchange took leaves a token that is
	// already expired when its answer arrives.
	if err := expiry.Check(displayName, p.now(), token.ExpiresAt); err != nil {
		return nil, err
	}
	return token, nil
}

// token reads a successful answer (RFC 6749 §5.1).
func (p *Provider) token(tok *xoauth2.Token, status int, obtainedAt time.Time) (*providers.Token, error) {
	if err := login.CheckTokenValue(displayName, tok.AccessToken); err != nil {
		return nil, err
	}
	expiresAt, err := p.expiry(tok, status, obtainedAt)
	if err != nil {
		return nil, err
	}
	if err := expiry.Check(displayName, obtainedAt, expiresAt); err != nil {
		return nil, err
	}
	token := &providers.Token{Value: tok.AccessToken, ObtainedAt: obtainedAt, ExpiresAt: expiresAt}
	extra := map[string]string{}
	if tok.TokenType != "" {
		extra[SecretKeyTokenType] = tok.TokenType
	}
	if scope, ok := tok.Extra("scope").(string); ok && scope != "" {
		extra[SecretKeyScope] = scope
	}
	if len(extra) > 0 {
		token.Extra = extra
	}
	return token, nil
}

// expiry reads expires_in on our clock (the library counts it from its own
// time.Now, after the answer); without it, a JWT's exp by the clock rule;
// without that, the configured default lifetime.
func (p *Provider) expiry(tok *xoauth2.Token, status int, obtainedAt time.Time) (time.Time, error) {
	if raw := tok.Extra("expires_in"); raw != nil {
		seconds, ok := number(raw)
		if !ok {
			return time.Time{}, providers.Errorf(providers.InvalidResponse,
				"%s answered HTTP %d with an expires_in that is not a number of seconds", displayName, status)
		}
		if seconds > expiry.MaxLifetime.Seconds() {
			seconds = expiry.MaxLifetime.Seconds() + 1 // refused by expiry.Check
		}
		return obtainedAt.Add(time.Duration(seconds * float64(time.Second))), nil
	}
	if claims, err := jwt.ParseClaims(tok.AccessToken); err == nil {
		if _, ok := claims.Expiry(obtainedAt); ok {
			return expiry.FromJWT(displayName, claims, obtainedAt)
		}
	}
	if d := time.Duration(p.settings.DefaultLifetime); d > 0 {
		return obtainedAt.Add(d), nil
	}
	return time.Time{}, providers.Errorf(providers.InvalidResponse,
		"%s answered HTTP %d without expires_in, and the access token is not a JWT with an exp claim: set %s.defaultLifetime to the tokens' lifetime",
		displayName, status, block)
}

// number reads expires_in: a JSON number, or digits in a string (some
// servers quote it; form answers always do).
func number(v any) (float64, bool) {
	var f float64
	switch v := v.(type) {
	case float64:
		f = v
	case int64:
		f = float64(v)
	case json.Number:
		n, err := v.Float64()
		if err != nil {
			return 0, false
		}
		f = n
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, false
		}
		f = n
	default:
		return 0, false
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

// failure classifies an error of clientcredentials. The library's own
// messages are never passed on: they quote the response body.
func failure(ctx context.Context, err error, status int, host string, creds providers.Credentials) error {
	var pe *providers.Error
	if errors.As(err, &pe) {
		return pe // classified by login.Transport
	}
	var re *xoauth2.RetrieveError
	if errors.As(err, &re) {
		reply := &login.Reply{StatusCode: status, Body: re.Body, Header: http.Header{}}
		if re.Response != nil {
			reply.StatusCode, reply.Header = re.Response.StatusCode, re.Response.Header
		}
		return errorResponse(reply, re.ErrorCode, re.ErrorDescription, creds)
	}
	if status == 0 {
		// Nothing was answered: the request could not be made.
		if ctx.Err() != nil {
			return login.TransportError(ctx, displayName, host, ctx.Err())
		}
		return providers.Errorf(providers.ProviderUnavailable, "the login request to %s failed", displayName)
	}
	// A 2xx answer the library could not read: not JSON or a form, or no
	// access_token.
	return providers.Errorf(providers.InvalidResponse,
		"%s answered HTTP %d with a body that is not an OAuth2 token response (RFC 6749 §5.1)", displayName, status)
}

func hostOf(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Host
	}
	return ""
}

// errorResponse classifies an error answer: an RFC 6749 §5.2 error
// response (an error code, in JSON or a form) by its code, and a 401 or 403
// without one as login.Blocked: not the token endpoint's own words, so
// something in front of it refused the request. The error code and
// description are the provider's text: each is quoted only when it is an
// identifier that echoes no credential (see quotable).
func errorResponse(reply *login.Reply, code, description string, creds providers.Credentials) error {
	status := reply.StatusCode
	if code == "" && login.IsRejectionStatus(status) {
		return login.Blocked(displayName, reply)
	}
	detail := fmt.Sprintf("HTTP %d", status)
	if quotable(code, creds) {
		detail += ", error " + code
		if quotable(description, creds) {
			detail += ": " + description
		}
	}
	switch code {
	case "invalid_client", "unauthorized_client", "invalid_grant":
		return providers.Errorf(providers.AuthenticationFailed,
			"%s rejected the client (%s): check %s in the credentials Secret, and that the client may use the client credentials grant",
			displayName, detail, checkKeys)
	case "invalid_scope":
		return providers.Errorf(providers.InvalidCredentials,
			"%s refused the requested scope (%s): check %s.scopes against the scopes the client may request", displayName, detail, block)
	case "invalid_request", "unsupported_grant_type":
		return providers.Errorf(providers.InvalidCredentials,
			"%s refused the token request (%s): check spec.endpoint, %s.parameters and %s.clientAuth", displayName, detail, block, block)
	}
	if login.IsRejectionStatus(status) {
		// Another RFC 6749 error code with 401 or 403: the endpoint's
		// own refusal of the client.
		return providers.Errorf(providers.AuthenticationFailed,
			"%s rejected the client (%s): check %s in the credentials Secret", displayName, detail, checkKeys)
	}
	return providers.Errorf(providers.InvalidCredentials,
		"%s refused the token request (%s): check spec.endpoint and %s, and %s in the credentials Secret", displayName, detail, block, checkKeys)
}

// quotable reports whether text from an error answer may be shown: a
// short [A-Za-z0-9_.-] name that does not echo one of the credentials (the
// partner API's rule).
func quotable(name string, creds providers.Credentials) bool {
	return login.Quotable(name, maxNameLen, creds)
}
