// Package aml logs in to AML Watcher: POST {endpoint}/api/get-access-token
// with an email and a password returns an access token valid for three hours.
package aml

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/expiry"
	"github.com/tokensync/tokensync/providers/internal/jwt"
	"github.com/tokensync/tokensync/providers/internal/login"
)

// Registration describes AML Watcher to the operator.
var Registration = providers.Registration{
	Name:            "aml",
	Title:           "AML Watcher",
	DefaultEndpoint: "https://api.amlwatcher.com",
	CredentialKeys: []providers.CredentialKey{
		{Name: keyEmail, Description: "the email address of the registered user"},
		{Name: keyPassword, Description: "that user's password (AML Watcher requires at least 8 characters)"},
	},
	New: func(o providers.Options) providers.Provider { return New(o) },
}

const (
	// TokenValidity is the documented lifetime of an access token.
	TokenValidity = 3 * time.Hour

	displayName = "AML Watcher"
	loginPath   = "/api/get-access-token"
	keyEmail    = "email"
	keyPassword = "password"
	checkKeys   = "email and password"
)

// Provider logs in to AML Watcher.
type Provider struct {
	client *http.Client
	now    func() time.Time
}

var (
	_ providers.Provider   = (*Provider)(nil)
	_ providers.Validator  = (*Provider)(nil)
	_ providers.LoginURLer = (*Provider)(nil)
)

// New returns an AML Watcher provider.
func New(opts providers.Options) *Provider {
	return &Provider{client: login.HTTPClient(opts), now: login.Clock(opts)}
}

// Validate checks that the email and password keys are present and not
// blank. The 8-character password minimum is AML Watcher's to enforce.
func (p *Provider) Validate(creds providers.Credentials) error {
	return login.RequireKeys(creds, keyEmail, keyPassword)
}

// LoginURL returns the URL a login at endpoint is sent to: the endpoint
// with /api/get-access-token joined.
func (p *Provider) LoginURL(endpoint string) (string, error) {
	return login.JoinURL(endpoint, loginPath)
}

// Login exchanges an email and a password for an access token.
func (p *Provider) Login(ctx context.Context, endpoint string, creds providers.Credentials) (*providers.Token, error) {
	body, err := requestBody(creds)
	if err != nil {
		return nil, err
	}
	url, err := p.LoginURL(endpoint)
	if err != nil {
		return nil, err
	}
	// Lifetimes count from before the request is sent, so that time spent
	// waiting for the answer never lengthens a token.
	obtainedAt := p.now()
	reply, err := login.SendJSON(ctx, p.client, p.now, login.JSONRequest{
		Provider: displayName,
		Method:   http.MethodPost,
		URL:      url,
		Body:     body,
		Accept:   "application/json",
	})
	if err != nil {
		return nil, err
	}
	token, err := parseResponse(reply, obtainedAt)
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

// requestBody builds {"email": ..., "password": ...}. Values are sent as
// stored: changing a password, even by trimming it, would be a guess.
func requestBody(creds providers.Credentials) ([]byte, error) {
	if err := login.RequireKeys(creds, keyEmail, keyPassword); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{
		keyEmail:    string(creds[keyEmail]),
		keyPassword: string(creds[keyPassword]),
	})
}

// The documented answer is
//
//	{"error": false, "status": "SUCCESS", "data": {"access_token": "..."}}
//
// error is "empty" on success and otherwise details the error, as a string
// or an object. data is "an array containing the actual response elements"
// in the response table but an object in the sample, so both are accepted:
// an object holding access_token, or an array of exactly one such object.
// Members are looked up by exact name: encoding/json would also match
// "Error" or "ACCESS_TOKEN" to a struct field.

// parseResponse interprets an answer SendJSON did not classify: a 2xx or a
// 4xx. Messages never quote the body, whose error text may echo the input.
// A 401 or 403 is AML Watcher's rejection only as a documented failure
// answer (a JSON object with status FAIL or an error); any other 401 or 403
// came from something in front of it (login.Blocked).
func parseResponse(reply *login.Reply, obtainedAt time.Time) (*providers.Token, error) {
	status, body := reply.StatusCode, reply.Body
	members, isObject := jsonObject(body)
	errorMember, statusMember := members["error"], members["status"]
	failed := isObject && (statusIs(statusMember, "FAIL") || errorIsSet(errorMember))

	if status < 200 || status >= 300 {
		switch {
		case login.IsRejectionStatus(status) && failed:
			return nil, rejected(status)
		case (status == http.StatusBadRequest || status == http.StatusUnprocessableEntity) && failed && speaksOfCredentials(errorMember):
			return nil, rejected(status)
		case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
			return nil, providers.Errorf(providers.InvalidCredentials,
				"%s refused the login request as malformed (HTTP %d): check that email is the registered address and password has at least 8 characters",
				displayName, status)
		default:
			return nil, login.ClientError(displayName, reply, checkKeys)
		}
	}

	if !isObject {
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with a body that is not a JSON object", displayName, status)
	}
	if failed {
		if speaksOfCredentials(errorMember) {
			return nil, rejected(status)
		}
		return nil, providers.Errorf(providers.InvalidResponse,
			"%s answered HTTP %d with status FAIL and an error that does not concern the credentials", displayName, status)
	}
	if statusMember != nil && !statusIs(statusMember, "SUCCESS") && !isNull(statusMember) {
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with a status other than SUCCESS or FAIL", displayName, status)
	}
	data, ok := dataObject(members["data"])
	if !ok {
		return nil, providers.Errorf(providers.InvalidResponse,
			"%s answered HTTP %d without data holding access_token (an object, or an array of one object)", displayName, status)
	}
	var token string
	if err := json.Unmarshal(data["access_token"], &token); err != nil {
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d without a data.access_token string", displayName, status)
	}
	if err := login.CheckTokenValue(displayName, token); err != nil {
		return nil, err
	}

	expiresAt := obtainedAt.Add(TokenValidity)
	// The documentation calls the token a JWT; when it is one, its own
	// lifetime may be shorter than the documented three hours.
	if claims, err := jwt.ParseClaims(token); err == nil {
		if jwtExpiry, ok := claims.Expiry(obtainedAt); ok && jwtExpiry.Before(expiresAt) {
			expiresAt = jwtExpiry
		}
	}
	if err := expiry.Check(displayName, obtainedAt, expiresAt); err != nil {
		return nil, err
	}
	return &providers.Token{Value: token, ObtainedAt: obtainedAt, ExpiresAt: expiresAt}, nil
}

func rejected(status int) error {
	return providers.Errorf(providers.AuthenticationFailed,
		"%s rejected the credentials (HTTP %d): check %s in the credentials Secret", displayName, status, checkKeys)
}

// jsonObject decodes a JSON object into its members; null, arrays,
// scalars and invalid JSON are not objects.
func jsonObject(raw []byte) (map[string]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, false
	}
	return members, true
}

// dataObject reads the data member: an object, or an array whose only
// element is an object. Empty arrays and arrays of several elements are
// not answers we can take a token from.
func dataObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	if members, ok := jsonObject(raw); ok {
		return members, true
	}
	var elements []json.RawMessage
	if err := json.Unmarshal(raw, &elements); err != nil || len(elements) != 1 {
		return nil, false
	}
	return jsonObject(elements[0])
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func statusIs(raw json.RawMessage, want string) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil && strings.EqualFold(strings.TrimSpace(s), want)
}

// errorIsSet tells whether the error member reports an error: absent, null,
// false, 0, "", {} and [] do not.
func errorIsSet(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return true
	}
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case float64:
		return v != 0
	case string:
		return strings.TrimSpace(v) != ""
	case map[string]any:
		return len(v) > 0
	case []any:
		return len(v) > 0
	}
	return true
}

// credentialWords are what an error about the credentials mentions. The
// error text is only searched, never shown: it may echo the input.
var credentialWords = []string{
	"email", "e-mail", "password", "credential", "unauthori", "unauthenticated",
	"invalid login", "login failed", "incorrect", "authenticat", "not registered",
}

func speaksOfCredentials(raw json.RawMessage) bool {
	text := strings.ToLower(string(raw))
	for _, w := range credentialWords {
		if strings.Contains(text, w) {
			return true
		}
	}
	return false
}
