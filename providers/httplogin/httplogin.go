// Package httplogin is the declarative login (provider "http"): the
// TokenRequest's spec.http says how to log in. {method} {endpoint}{path}
// with headers and a JSON or form body whose values are templates over the
// credentials Secret's keys returns a token found by a JSON pointer, as the
// whole body, or in a response header, and an expiry read from the token
// (a JWT's exp), from the answer (a JSON pointer), or a fixed lifetime.
package httplogin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokensync/tokensync/internal/urlpath"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/expiry"
	"github.com/tokensync/tokensync/providers/internal/jwt"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/internal/settings"
)

// Registration describes the declarative login to the operator. Its
// credential keys are the ones spec.http's templates name: the configured
// provider says which (providers.CredentialUser). Until it is configured,
// every key of the credentials Secret counts as used, so that no change
// goes unnoticed.
var Registration = providers.Registration{
	Name:              "http",
	Title:             "a login described by spec.http: the request, where the token is, when it expires",
	SettingsHint:      "it says how to log in (path, body, token, expiry)",
	SelectCredentials: func(c providers.Credentials) providers.Credentials { return c },
	New:               func(o providers.Options) providers.Provider { return New(o) },
}

const (
	displayName = "the login endpoint"
	block       = "spec.http"
)

// Body formats (spec.http.body.format).
const (
	FormatJSON = "json"
	FormatForm = "form"
)

// Expiry formats (spec.http.expiry.format).
const (
	// ExpiryRFC3339 is an absolute time, "2026-11-22T13:00:00Z".
	ExpiryRFC3339 = "RFC3339"
	// ExpiryUnixSeconds is an absolute time in seconds since the epoch.
	ExpiryUnixSeconds = "UnixSeconds"
	// ExpirySecondsFromNow is a lifetime in seconds, counted from when the
	// login started.
	ExpirySecondsFromNow = "SecondsFromNow"
)

// Settings is spec.http, under the same JSON names.
type Settings struct {
	// Method is GET, POST (when empty), PUT or PATCH.
	Method string `json:"method,omitempty"`
	// Path is joined to spec.endpoint.
	Path string `json:"path,omitempty"`
	// Headers are header names and value templates.
	Headers map[string]string `json:"headers,omitempty"`
	Body    *Body             `json:"body,omitempty"`
	Token   Token             `json:"token"`
	Expiry  Expiry            `json:"expiry"`
	Success *Success          `json:"success,omitempty"`
}

// Body is the request body: fields rendered from templates, as a JSON
// object of strings or as a form.
type Body struct {
	// Format is FormatJSON (when empty) or FormatForm.
	Format string            `json:"format,omitempty"`
	Fields map[string]string `json:"fields,omitempty"`
}

// Token says where the token is in a successful answer: exactly one of
// the three.
type Token struct {
	JSONPointer string `json:"jsonPointer,omitempty"`
	// RawBody: the whole body, trimmed; a JSON string is unquoted.
	RawBody bool   `json:"rawBody,omitempty"`
	Header  string `json:"header,omitempty"`
}

// Expiry says when the token expires: the earliest of the token's exp
// (FromJWT) and the value at JSONPointer, when either is there; else
// Lifetime from the login's start. At least one is set.
type Expiry struct {
	FromJWT     bool              `json:"fromJWT,omitempty"`
	JSONPointer string            `json:"jsonPointer,omitempty"`
	Format      string            `json:"format,omitempty"`
	Lifetime    settings.Duration `json:"lifetime,omitempty"`
}

// Success is the rule of APIs that answer a failed login with 2xx: the
// value at JSONPointer (a string, or the JSON text of another value) must
// equal Equals.
type Success struct {
	JSONPointer string `json:"jsonPointer"`
	Equals      string `json:"equals"`
}

// Provider logs in as its settings say.
type Provider struct {
	client *http.Client
	now    func() time.Time
	// login is nil until WithSettings.
	login *compiled
}

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.Validator      = (*Provider)(nil)
	_ providers.Configurable   = (*Provider)(nil)
	_ providers.CredentialUser = (*Provider)(nil)
	_ providers.LoginURLer     = (*Provider)(nil)
)

// New returns an unconfigured provider: WithSettings gives it its login.
func New(opts providers.Options) *Provider {
	return &Provider{client: login.HTTPClient(opts), now: login.Clock(opts)}
}

// compiled is Settings checked and parsed.
type compiled struct {
	method, path  string
	headers       []*credentialTemplate // sorted by name
	headerNames   map[*credentialTemplate]string
	hasBody       bool
	format        string
	fields        []*credentialTemplate
	fieldNames    map[*credentialTemplate]string
	token         Token
	tokenPointer  jsonPointer
	expiry        Expiry
	expiryPointer jsonPointer
	success       *Success
	successPtr    jsonPointer
	// keys are the credential keys the templates read, sorted.
	keys []string
}

// WithSettings returns a provider for spec.http's JSON.
func (p *Provider) WithSettings(data []byte) (providers.Provider, error) {
	var s Settings
	if len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
		return nil, settings.Invalid("%s is required for provider http", block)
	}
	if err := settings.Decode(block, data, &s); err != nil {
		return nil, err
	}
	c, err := compile(s)
	if err != nil {
		return nil, err
	}
	configured := *p
	configured.login = c
	return &configured, nil
}

// forbiddenHeaders are set by the HTTP client; a template cannot set them.
var forbiddenHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "User-Agent"}

func compile(s Settings) (*compiled, error) {
	c := &compiled{method: s.Method, path: s.Path, format: FormatJSON, token: s.Token, expiry: s.Expiry, success: s.Success,
		headerNames: map[*credentialTemplate]string{}, fieldNames: map[*credentialTemplate]string{}}
	if c.method == "" {
		c.method = http.MethodPost
	}
	switch c.method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return nil, settings.Invalid("%s.method must be GET, POST, PUT or PATCH", block)
	}
	if strings.ContainsAny(s.Path, "?#") || strings.IndexFunc(s.Path, isSpaceOrControl) >= 0 {
		return nil, settings.Invalid("%s.path must be a path only, without query, fragment, spaces or control characters", block)
	}
	// Refused rather than resolved: joined, "../admin" would lead out of
	// spec.endpoint's path, past an allowlisted prefix.
	if err := urlpath.Check(s.Path); err != nil {
		return nil, settings.Invalid("%s.path is refused: %v; write the path below spec.endpoint without them", block, err)
	}
	keys := map[string]bool{}
	for _, name := range sortedKeys(s.Headers) {
		if !validHeaderName(name) {
			return nil, settings.Invalid("%s.headers: %q is not a valid header name", block, name)
		}
		if slices.ContainsFunc(forbiddenHeaders, func(f string) bool { return strings.EqualFold(f, name) }) {
			return nil, settings.Invalid("%s.headers must not set %s: the HTTP client sets it", block, http.CanonicalHeaderKey(name))
		}
		t, err := parseTemplate(fmt.Sprintf("%s.headers[%q]", block, name), s.Headers[name])
		if err != nil {
			return nil, err
		}
		c.headers = append(c.headers, t)
		c.headerNames[t] = name
		addKeys(keys, t.keys)
	}
	if b := s.Body; b != nil {
		c.hasBody = true
		switch b.Format {
		case "", FormatJSON:
		case FormatForm:
			c.format = FormatForm
		default:
			return nil, settings.Invalid("%s.body.format must be json or form", block)
		}
		if c.method == http.MethodGet {
			return nil, settings.Invalid("%s.body is not allowed with method GET", block)
		}
		for _, name := range sortedKeys(b.Fields) {
			t, err := parseTemplate(fmt.Sprintf("%s.body.fields[%q]", block, name), b.Fields[name])
			if err != nil {
				return nil, err
			}
			c.fields = append(c.fields, t)
			c.fieldNames[t] = name
			addKeys(keys, t.keys)
		}
	}
	c.keys = sortedKeys(keys)

	modes := 0
	if s.Token.JSONPointer != "" {
		modes++
	}
	if s.Token.RawBody {
		modes++
	}
	if s.Token.Header != "" {
		modes++
		if !validHeaderName(s.Token.Header) {
			return nil, settings.Invalid("%s.token.header: %q is not a valid header name", block, s.Token.Header)
		}
	}
	if modes != 1 {
		return nil, settings.Invalid("%s.token must set exactly one of jsonPointer, rawBody: true or header", block)
	}
	var err error
	if c.tokenPointer, err = pointerSetting("token.jsonPointer", s.Token.JSONPointer); err != nil {
		return nil, err
	}

	e := s.Expiry
	if !e.FromJWT && e.JSONPointer == "" && e.Lifetime <= 0 {
		return nil, settings.Invalid("%s.expiry must set at least one of fromJWT: true, jsonPointer (with format) or lifetime", block)
	}
	switch {
	case e.JSONPointer != "" && e.Format == "":
		return nil, settings.Invalid("%s.expiry.format (RFC3339, UnixSeconds or SecondsFromNow) is required with expiry.jsonPointer", block)
	case e.JSONPointer == "" && e.Format != "":
		return nil, settings.Invalid("%s.expiry.format is only allowed with expiry.jsonPointer", block)
	}
	switch e.Format {
	case "", ExpiryRFC3339, ExpiryUnixSeconds, ExpirySecondsFromNow:
	default:
		return nil, settings.Invalid("%s.expiry.format must be RFC3339, UnixSeconds or SecondsFromNow", block)
	}
	if c.expiryPointer, err = pointerSetting("expiry.jsonPointer", e.JSONPointer); err != nil {
		return nil, err
	}
	if s.Success != nil {
		if s.Success.JSONPointer == "" {
			return nil, settings.Invalid("%s.success.jsonPointer is required", block)
		}
		if c.successPtr, err = pointerSetting("success.jsonPointer", s.Success.JSONPointer); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func pointerSetting(field, s string) (jsonPointer, error) {
	p, err := parseJSONPointer(s)
	if err != nil {
		return p, settings.Invalid("%s.%s %q is not a JSON pointer (RFC 6901): %s", block, field, s, err)
	}
	return p, nil
}

// Validate checks that every key the templates read is present, not
// blank, and text.
func (p *Provider) Validate(creds providers.Credentials) error {
	if p.login == nil {
		return settings.Invalid("%s is required for provider http", block)
	}
	return login.RequireKeys(creds, p.login.keys...)
}

// CredentialKeyNames names the keys the templates read.
func (p *Provider) CredentialKeyNames() string {
	if p.login == nil || len(p.login.keys) == 0 {
		return "(none: no template of spec.http reads one)"
	}
	return strings.Join(p.login.keys, ", ")
}

// UsedCredentials returns the keys of creds the templates read. Before
// WithSettings, every key.
func (p *Provider) UsedCredentials(creds providers.Credentials) providers.Credentials {
	if p.login == nil {
		return creds
	}
	used := providers.Credentials{}
	for _, k := range p.login.keys {
		if v, ok := creds[k]; ok {
			used[k] = v
		}
	}
	return used
}

// LoginURL returns the URL a login at endpoint is sent to: the endpoint
// with spec.http.path joined. Before WithSettings there is no path to join,
// and the answer is the error Login would give.
func (p *Provider) LoginURL(endpoint string) (string, error) {
	if p.login == nil {
		return "", settings.Invalid("%s is required for provider http", block)
	}
	return p.login.loginURL(endpoint)
}

// Login renders the request from creds, sends it, and reads the token and
// its expiry from the answer.
func (p *Provider) Login(ctx context.Context, endpoint string, creds providers.Credentials) (*providers.Token, error) {
	if err := p.Validate(creds); err != nil {
		return nil, err
	}
	c := p.login
	req, err := c.request(endpoint, creds)
	if err != nil {
		return nil, err
	}
	// Lifetimes count from before the request is sent, so that time spent
	// waiting for the answer never lengthens a token.
	obtainedAt := p.now()
	reply, err := login.Send(ctx, p.client, p.now, req)
	if err != nil {
		return nil, err
	}
	token, err := c.parseReply(reply, obtainedAt)
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

// loginURL joins the path to endpoint.
func (c *compiled) loginURL(endpoint string) (string, error) {
	return login.JoinURL(endpoint, c.path)
}

// request renders the login request.
func (c *compiled) request(endpoint string, creds providers.Credentials) (login.Request, error) {
	target, err := c.loginURL(endpoint)
	if err != nil {
		return login.Request{}, err
	}
	data := templateData(creds, c.keys)
	req := login.Request{Provider: displayName, Method: c.method, URL: target, Header: http.Header{}}
	var size requestSize
	if c.hasBody {
		fields := make(map[string]string, len(c.fields))
		for _, t := range c.fields {
			v, err := t.render(data)
			if err != nil {
				return login.Request{}, err
			}
			if err := size.add(v); err != nil {
				return login.Request{}, err
			}
			fields[c.fieldNames[t]] = v
		}
		if c.format == FormatForm {
			form := url.Values{}
			for k, v := range fields {
				form.Set(k, v)
			}
			req.Body = []byte(form.Encode())
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			body, err := json.Marshal(fields)
			if err != nil {
				return login.Request{}, settings.Invalid("%s.body could not be encoded", block)
			}
			req.Body = body
			req.Header.Set("Content-Type", "application/json")
		}
	}
	for _, t := range c.headers {
		v, err := t.render(data)
		if err != nil {
			return login.Request{}, err
		}
		if err := size.add(v); err != nil {
			return login.Request{}, err
		}
		if !validHeaderValue(v) {
			return login.Request{}, providers.Errorf(providers.InvalidCredentials,
				"%s renders to a value a header cannot carry (a line break or another control character): check the values of %s in the credentials Secret (a trailing newline? the template function trim removes it)",
				t.name, keyList(t.keys))
		}
		req.Header.Set(c.headerNames[t], v)
	}
	return req, nil
}

// parseReply interprets an answer login.Send did not classify: a 2xx or a
// 4xx. Messages never quote the body or a header's value.
func (c *compiled) parseReply(reply *login.Reply, obtainedAt time.Time) (*providers.Token, error) {
	status := reply.StatusCode
	if status < 200 || status >= 300 {
		return nil, c.failure(reply)
	}
	var doc any
	var docErr error
	if c.token.JSONPointer != "" || c.expiry.JSONPointer != "" || c.success != nil {
		doc, docErr = decodeJSON(reply.Body)
	}
	if c.success != nil {
		if docErr != nil {
			return nil, providers.Errorf(providers.InvalidResponse,
				"%s answered HTTP %d with a body that is not JSON, so %s.success cannot be checked", displayName, status, block)
		}
		if v, ok := c.successPtr.lookup(doc); !ok || !equals(v, c.success.Equals) {
			return nil, providers.Errorf(providers.AuthenticationFailed,
				"%s answered HTTP %d but the login failed (%s is not %q, as %s.success requires): check %s in the credentials Secret",
				displayName, status, c.successPtr, c.success.Equals, block, keyList(c.keys))
		}
	}
	token, err := c.tokenValue(reply, doc, docErr)
	if err != nil {
		return nil, err
	}
	if err := login.CheckTokenValue(displayName, token); err != nil {
		return nil, err
	}
	expiresAt, err := c.expiresAt(status, token, doc, docErr, obtainedAt)
	if err != nil {
		return nil, err
	}
	if err := expiry.Check(displayName, obtainedAt, expiresAt); err != nil {
		return nil, err
	}
	return &providers.Token{Value: token, ObtainedAt: obtainedAt, ExpiresAt: expiresAt}, nil
}

// failure classifies a 4xx. The login has no documentation to say what its
// rejection looks like, so a 401 or 403 with a JSON object or array for a
// body is taken as the API's own (an API answers in JSON); with anything
// else (an HTML page, an empty body, text) something in front of it
// refused the request (login.Blocked).
func (c *compiled) failure(reply *login.Reply) error {
	status := reply.StatusCode
	if !login.IsRejectionStatus(status) {
		return login.ClientError(displayName, reply, keyList(c.keys))
	}
	if doc, err := decodeJSON(reply.Body); err == nil {
		switch doc.(type) {
		case map[string]any, []any:
			return providers.Errorf(providers.AuthenticationFailed,
				"%s rejected the credentials (HTTP %d): check %s in the credentials Secret", displayName, status, keyList(c.keys))
		}
	}
	return login.Blocked(displayName, reply)
}

func (c *compiled) tokenValue(reply *login.Reply, doc any, docErr error) (string, error) {
	status := reply.StatusCode
	switch {
	case c.token.JSONPointer != "":
		if docErr != nil {
			return "", providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with a body that is not JSON", displayName, status)
		}
		v, ok := c.tokenPointer.lookup(doc)
		s, isString := v.(string)
		if !ok || !isString {
			return "", providers.Errorf(providers.InvalidResponse,
				"%s answered HTTP %d without a string at %s (%s.token.jsonPointer)", displayName, status, c.tokenPointer, block)
		}
		return s, nil
	case c.token.Header != "":
		v := strings.TrimSpace(reply.Header.Get(c.token.Header))
		if v == "" {
			return "", providers.Errorf(providers.InvalidResponse,
				"%s answered HTTP %d without a %s header (%s.token.header)", displayName, status, http.CanonicalHeaderKey(c.token.Header), block)
		}
		return v, nil
	}
	return rawToken(status, reply.Body)
}

// rawToken reads a body that is the token: trimmed, a JSON string
// unquoted. A body that is an HTML page, a JSON object, array or literal,
// or text with spaces is not a token.
func rawToken(status int, body []byte) (string, error) {
	body = bytes.TrimSpace(body)
	notToken := providers.Errorf(providers.InvalidResponse,
		"%s answered HTTP %d with a body that is not a bare token (%s.token.rawBody)", displayName, status, block)
	if len(body) > 0 && body[0] == '"' {
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return "", notToken
		}
		return strings.TrimSpace(s), nil
	}
	switch {
	case len(body) == 0:
		return "", nil // CheckTokenValue says there is no token
	case body[0] == '<' || body[0] == '{' || body[0] == '[',
		string(body) == "null" || string(body) == "true" || string(body) == "false",
		bytes.IndexFunc(body, isSpaceOrControl) >= 0:
		return "", notToken
	}
	return string(body), nil
}

// expiresAt applies spec.http.expiry: the earliest of the token's exp and
// the value at the pointer, when either is there; else the lifetime.
func (c *compiled) expiresAt(status int, token string, doc any, docErr error, obtainedAt time.Time) (time.Time, error) {
	e := c.expiry
	var found []time.Time
	if e.FromJWT {
		if claims, err := jwt.ParseClaims(token); err == nil {
			if _, ok := claims.Expiry(obtainedAt); ok {
				at, err := expiry.FromJWT(displayName, claims, obtainedAt)
				if err != nil {
					return time.Time{}, err
				}
				found = append(found, at)
			}
		}
	}
	if e.JSONPointer != "" {
		if docErr != nil {
			return time.Time{}, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with a body that is not JSON", displayName, status)
		}
		if v, ok := c.expiryPointer.lookup(doc); ok && v != nil {
			at, ok := parseExpiry(v, e.Format, obtainedAt)
			if !ok {
				return time.Time{}, providers.Errorf(providers.InvalidResponse,
					"%s answered HTTP %d with a value at %s that is not a %s time (%s.expiry)", displayName, status, c.expiryPointer, e.Format, block)
			}
			found = append(found, at)
		}
	}
	if len(found) > 0 {
		return slices.MinFunc(found, func(a, b time.Time) int { return a.Compare(b) }), nil
	}
	if e.Lifetime > 0 {
		return obtainedAt.Add(time.Duration(e.Lifetime)), nil
	}
	var missing []string
	if e.FromJWT {
		missing = append(missing, "the token is not a JWT with an exp claim")
	}
	if e.JSONPointer != "" {
		missing = append(missing, "the answer has no value at "+c.expiryPointer.String())
	}
	return time.Time{}, providers.Errorf(providers.InvalidResponse,
		"%s answered HTTP %d without an expiry (%s): set %s.expiry.lifetime as a fallback", displayName, status, strings.Join(missing, ", and "), block)
}

// maxSeconds is the last second of year 9999, beyond any plausible time.
const maxSeconds = 253402300799

// parseExpiry reads a value of the answer in format: RFC3339 a string;
// UnixSeconds and SecondsFromNow a number, or a number in a string.
func parseExpiry(v any, format string, obtainedAt time.Time) (time.Time, bool) {
	if format == ExpiryRFC3339 {
		s, ok := v.(string)
		if !ok {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
		return t, err == nil
	}
	var f float64
	switch v := v.(type) {
	case json.Number:
		n, err := v.Float64()
		if err != nil {
			return time.Time{}, false
		}
		f = n
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return time.Time{}, false
		}
		f = n
	default:
		return time.Time{}, false
	}
	if math.IsNaN(f) || f < 0 || f > maxSeconds {
		return time.Time{}, false
	}
	if format == ExpirySecondsFromNow {
		// Saturates far beyond any lifetime expiry.Check accepts.
		return obtainedAt.Add(time.Duration(min(f, expiry.MaxLifetime.Seconds()+1) * float64(time.Second))), true
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), true
}

// equals compares a value of the answer with success.equals: a string as
// it is, anything else by its JSON text (true, 200, null).
func equals(v any, want string) bool {
	if s, ok := v.(string); ok {
		return s == want
	}
	text, err := json.Marshal(v)
	return err == nil && string(text) == want
}

// keyList names keys for a message: "email and password", "a, b and c".
func keyList(keys []string) string {
	switch len(keys) {
	case 0:
		return "the credentials"
	case 1:
		return keys[0]
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " and " + keys[len(keys)-1]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func addKeys(set map[string]bool, keys []string) {
	for _, k := range keys {
		set[k] = true
	}
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// validHeaderName: an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue: no control characters but tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
