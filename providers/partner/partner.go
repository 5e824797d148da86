// Package partner logs in to the partner API: POST {endpoint}/login with an
// access key and its secret returns a JWT (201 Created, the bare token as body).
package partner

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/expiry"
	"github.com/tokensync/tokensync/providers/internal/jwt"
	"github.com/tokensync/tokensync/providers/internal/login"
)

// Registration describes the partner API to the operator. It has no public
// default endpoint: each partner has its own.
var Registration = providers.Registration{
	Name:  "partner",
	Title: "the partner API",
	CredentialKeys: []providers.CredentialKey{
		{Name: keyAccessKey, Description: "the access key created in the admin portal"},
		{Name: keySecret, Description: "the secret associated with the access key"},
	},
	New: func(o providers.Options) providers.Provider { return New(o) },
}

const (
	displayName  = "the partner API"
	loginPath    = "/login"
	keyAccessKey = "accessKey"
	keySecret    = "secret"
	checkKeys    = "accessKey and secret"
	// maxNameLen bounds identifiers quoted from an error answer.
	maxNameLen = 64
)

// Provider logs in to the partner API.
type Provider struct {
	client *http.Client
	now    func() time.Time
}

var (
	_ providers.Provider   = (*Provider)(nil)
	_ providers.Validator  = (*Provider)(nil)
	_ providers.LoginURLer = (*Provider)(nil)
)

// New returns a partner API provider.
func New(opts providers.Options) *Provider {
	return &Provider{client: login.HTTPClient(opts), now: login.Clock(opts)}
}

// Validate checks that the accessKey and secret keys are present and not blank.
func (p *Provider) Validate(creds providers.Credentials) error {
	return login.RequireKeys(creds, keyAccessKey, keySecret)
}

// LoginURL returns the URL a login at endpoint is sent to: the endpoint
// with /login joined.
func (p *Provider) LoginURL(endpoint string) (string, error) {
	return login.JoinURL(endpoint, loginPath)
}

// Login exchanges an access key and its secret for a JWT, which expires
// after its own exp - iat from now.
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
	})
	if err != nil {
		return nil, err
	}
	token, err := parseResponse(reply, obtainedAt, creds)
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

// requestBody builds {"accessKey": ..., "secret": ...}, values as stored.
func requestBody(creds providers.Credentials) ([]byte, error) {
	if err := login.RequireKeys(creds, keyAccessKey, keySecret); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{
		keyAccessKey: string(creds[keyAccessKey]),
		keySecret:    string(creds[keySecret]),
	})
}

// parseResponse interprets an answer SendJSON did not classify: a 2xx or a
// 4xx. creds are only used to keep them out of messages.
func parseResponse(reply *login.Reply, obtainedAt time.Time, creds providers.Credentials) (*providers.Token, error) {
	status, body := reply.StatusCode, reply.Body
	if status < 200 || status >= 300 {
		return nil, failure(reply, creds)
	}
	token, ok := bareToken(body)
	if !ok {
		return nil, providers.Errorf(providers.InvalidResponse,
			"%s answered HTTP %d with a body that is not a bare token", displayName, status)
	}
	if err := login.CheckTokenValue(displayName, token); err != nil {
		return nil, err
	}
	claims, err := jwt.ParseClaims(token)
	if err != nil {
		return nil, providers.Errorf(providers.InvalidResponse,
			"%s answered HTTP %d with a token that is not a readable JWT (%s)", displayName, status, err)
	}
	expiresAt, err := expiry.FromJWT(displayName, claims, obtainedAt)
	if err != nil {
		return nil, err
	}
	return &providers.Token{Value: token, ObtainedAt: obtainedAt, ExpiresAt: expiresAt}, nil
}

// bareToken reads the documented body, the token itself, tolerating
// surrounding whitespace and JSON quoting.
func bareToken(body []byte) (string, bool) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '"' {
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return "", false
		}
		return strings.TrimSpace(s), true
	}
	for _, c := range body {
		// A JWT is base64url segments and dots; anything else (an HTML
		// page, a JSON object) is not the documented answer.
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '=') {
			return "", false
		}
	}
	return string(body), len(body) > 0
}

// errorBody is the documented failure answer:
//
//	{"statusCode": "Error", "error": {"name": "...", "message": "...", "details": ...}}
//
// details is a list of {message, info: {missingProperty}} for a 400
// InvalidRequestFormatError, and {reason} for a 401 AuthenticationError.
type errorBody struct {
	Error struct {
		Details json.RawMessage `json:"details"`
	} `json:"error"`
}

// documentedError reads body as the documented failure answer: a JSON
// object whose error member is an object. ok is false for anything else
// (an HTML page, an empty body, another JSON document).
func documentedError(body []byte) (eb errorBody, ok bool) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return eb, false
	}
	if errorMember := bytes.TrimSpace(members["error"]); len(errorMember) == 0 || errorMember[0] != '{' {
		return eb, false
	}
	return eb, json.Unmarshal(body, &eb) == nil
}

// failure classifies a 4xx. Only identifiers are quoted from the answer
// (see quotable): its messages may echo the input. A 401 or 403 is the
// partner API's rejection only with its documented error object; without
// it, something in front of the API answered (login.Blocked).
func failure(reply *login.Reply, creds providers.Credentials) error {
	status := reply.StatusCode
	eb, documented := documentedError(reply.Body)
	if login.IsRejectionStatus(status) && !documented {
		return login.Blocked(displayName, reply)
	}

	switch status {
	case http.StatusBadRequest:
		if missing := missingProperties(eb.Error.Details, creds); len(missing) > 0 {
			property := "property"
			if len(missing) > 1 {
				property = "properties"
			}
			return providers.Errorf(providers.InvalidCredentials,
				"%s refused the login request (HTTP 400): it lacks the %s %s; check %s in the credentials Secret",
				displayName, property, strings.Join(missing, ", "), checkKeys)
		}
		return providers.Errorf(providers.InvalidCredentials,
			"%s refused the login request as malformed (HTTP 400): check %s in the credentials Secret",
			displayName, checkKeys)
	case http.StatusUnauthorized, http.StatusForbidden:
		// The documentation gives the 401; a 403 in the same shape is the
		// API's own refusal as well.
		var details struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(eb.Error.Details, &details)
		reason := ""
		if quotable(details.Reason, creds) {
			reason = ", reason " + details.Reason
		}
		return providers.Errorf(providers.AuthenticationFailed,
			"%s rejected the access key (HTTP %d%s): check %s in the credentials Secret, and that the key is active (not pending or expired) in the admin portal",
			displayName, status, reason, checkKeys)
	}
	return login.ClientError(displayName, reply, checkKeys)
}

// missingProperties returns the quotable details[].info.missingProperty names.
func missingProperties(details json.RawMessage, creds providers.Credentials) []string {
	var list []struct {
		Info struct {
			MissingProperty string `json:"missingProperty"`
		} `json:"info"`
	}
	if err := json.Unmarshal(details, &list); err != nil {
		return nil
	}
	seen := map[string]bool{}
	var names []string
	for _, d := range list {
		name := d.Info.MissingProperty
		if quotable(name, creds) && !seen[name] && len(names) < 5 {
			seen[name] = true
			names = append(names, `"`+name+`"`)
		}
	}
	sort.Strings(names)
	return names
}

// quotable reports whether an identifier from an error answer may be shown:
// a short [A-Za-z0-9_.-] name that does not echo one of the credentials.
func quotable(name string, creds providers.Credentials) bool {
	return login.Quotable(name, maxNameLen, creds)
}
