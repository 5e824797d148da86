// Package amplifi logs in to AmpliFi: PUT {endpoint}/token with a
// channel-specific JSON body returns a token, its expiry (dtsExpiry) and the
// user's id.
package amplifi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/expiry"
	"github.com/tokensync/tokensync/providers/internal/login"
)

// Registration describes AmpliFi to the operator. It has no public default
// endpoint (the documentation writes ${AMPLIFI_BASE_URL}).
var Registration = providers.Registration{
	Name:  "amplifi",
	Title: "AmpliFi",
	CredentialKeys: []providers.CredentialKey{
		{Name: CredentialsJSONKey, Description: "the whole PUT /token request body, a JSON object"},
		{Name: "channel", Alternative: true, Description: "instead of credentials.json, one key per field: " +
			"the channel, and that channel's fields as further keys (deviceData and specifics hold JSON objects)"},
	},
	SelectCredentials: UsedCredentials,
	New:               func(o providers.Options) providers.Provider { return New(o) },
}

// Keys of the Secret data written next to the token (Token.Extra).
const (
	ExtraUserID    = "userId"
	ExtraAFiUserID = "AFiUserId"
)

// CredentialsJSONKey is the credentials key that, when present, holds the
// whole request body as a JSON object.
const CredentialsJSONKey = "credentials.json"

const (
	displayName = "AmpliFi"
	loginPath   = "/token"
)

// requiredFields lists, per documented channel, the fields its schema
// requires, as non-empty strings. Where the documentation's own working
// examples leave a field out, it is not required: the android example has
// no signature, and the test example no dtsValueString (it sends a
// deviceData object instead).
var requiredFields = map[string][]string{
	"internet":           {"userName", "password"},
	"android":            {"uuid", "deviceTagOpen"},
	"browser":            {"deviceId"},
	"statementGenerator": {"userId"},
	"dicBuilder":         {"userId"},
	"chat":               {"transportUserId", "transport"},
	"android_v1":         {"deviceTag", "dtsValueString", "cryptotext"},
	"mobile":             {"deviceTag", "dtsValueString", "cryptotext"},
	"ios_v1":             {"deviceTag", "dtsValueString", "cryptotext"},
	"test":               {"deviceTag"},
}

// fieldKeys are the flat credential keys sent as body fields: every field
// the documentation names for any channel, true for the two whose values are
// JSON objects (deviceData and specifics, from its examples). Other keys of a
// credentials Secret are never sent: a Secret filled by a secrets manager or
// shared with other credentials must not leak its other values to AmpliFi.
var fieldKeys = map[string]bool{
	"channel":         false,
	"userName":        false,
	"password":        false,
	"uuid":            false,
	"deviceTagOpen":   false,
	"signature":       false,
	"deviceId":        false,
	"userId":          false,
	"transportUserId": false,
	"transport":       false,
	"deviceTag":       false,
	"dtsValueString":  false,
	"cryptotext":      false,
	"deviceData":      true,
	"specifics":       true,
}

// Channels returns the documented channels, sorted.
func Channels() []string {
	channels := make([]string, 0, len(requiredFields))
	for c := range requiredFields {
		channels = append(channels, c)
	}
	sort.Strings(channels)
	return channels
}

// Provider logs in to AmpliFi.
type Provider struct {
	client *http.Client
	now    func() time.Time
}

var (
	_ providers.Provider   = (*Provider)(nil)
	_ providers.Validator  = (*Provider)(nil)
	_ providers.LoginURLer = (*Provider)(nil)
)

// New returns an AmpliFi provider.
func New(opts providers.Options) *Provider {
	return &Provider{client: login.HTTPClient(opts), now: login.Clock(opts)}
}

// Validate checks what is certain before sending: see RequestBody.
func (p *Provider) Validate(creds providers.Credentials) error {
	_, err := RequestBody(creds)
	return err
}

// LoginURL returns the URL a login at endpoint is sent to: the endpoint
// with /token joined.
func (p *Provider) LoginURL(endpoint string) (string, error) {
	return login.JoinURL(endpoint, loginPath)
}

// Login exchanges channel credentials for a token. Token.Extra holds
// userId, and AFiUserId when it differs from userId.
func (p *Provider) Login(ctx context.Context, endpoint string, creds providers.Credentials) (*providers.Token, error) {
	body, err := RequestBody(creds)
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
		Method:   http.MethodPut,
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

// UsedCredentials returns the keys of creds that RequestBody reads:
// credentials.json when present, else the field keys present (see
// fieldKeys). Field keys next to credentials.json are returned too: they make
// the credentials invalid, and removing them changes the login. Other keys
// never reach AmpliFi.
func UsedCredentials(creds providers.Credentials) providers.Credentials {
	used := providers.Credentials{}
	for key, value := range creds {
		if _, field := fieldKeys[key]; field || key == CredentialsJSONKey {
			used[key] = value
		}
	}
	return used
}

// RequestBody builds the PUT /token body from the credentials, either
//   - one key, credentials.json, holding the whole body as a JSON object,
//     sent as written (// and /* */ comments allowed, as in the
//     documentation's examples), or
//   - one key per field the documentation names (channel, userName,
//     password, uuid, deviceTagOpen, signature, deviceId, userId,
//     transportUserId, transport, deviceTag, dtsValueString, cryptotext),
//     each sent as a string, and deviceData and specifics, whose values are
//     JSON objects.
//
// Any other key is ignored: never sent, never checked. It then checks that
// channel is a documented channel and that the fields its schema requires
// are non-empty strings. Errors are InvalidCredentials and name keys, never
// values.
func RequestBody(creds providers.Credentials) ([]byte, error) {
	creds = UsedCredentials(creds)
	size := 0
	for _, v := range creds {
		size += len(v)
	}
	if size > login.MaxCredentialBytes {
		return nil, providers.Errorf(providers.InvalidCredentials,
			"the AmpliFi credentials (credentials.json or the channel's fields) are larger than 64 KiB, which no login credential is; check the credentials secret")
	}
	fields, source, err := bodyFields(creds)
	if err != nil {
		return nil, err
	}
	if err := checkChannel(fields, source); err != nil {
		return nil, err
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return nil, providers.Errorf(providers.InvalidCredentials, "the AmpliFi request body cannot be encoded from the credentials")
	}
	return body, nil
}

// bodyFields returns the body's members and how to name one in a message.
// creds holds only the keys UsedCredentials returns.
func bodyFields(creds providers.Credentials) (map[string]json.RawMessage, func(string) string, error) {
	// Sorted, so that the same credentials always get the same message.
	keys := make([]string, 0, len(creds))
	for key := range creds {
		if key != CredentialsJSONKey {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)

	if raw, ok := creds[CredentialsJSONKey]; ok {
		if len(keys) > 0 {
			return nil, nil, providers.Errorf(providers.InvalidCredentials,
				"credentials secret has key %q and the field key %s: put the whole request body in %q, or one key per field, not both",
				CredentialsJSONKey, login.QuoteKey(keys[0]), CredentialsJSONKey)
		}
		fields, ok := jsonObject(stripComments(raw))
		if !ok {
			return nil, nil, providers.Errorf(providers.InvalidCredentials,
				"credentials secret key %q is not a JSON object", CredentialsJSONKey)
		}
		return fields, func(f string) string { return "field " + login.QuoteKey(f) + " of " + CredentialsJSONKey }, nil
	}

	fields := make(map[string]json.RawMessage, len(keys))
	for _, key := range keys {
		value := creds[key]
		if fieldKeys[key] {
			object, ok := jsonObject(value)
			if !ok {
				return nil, nil, providers.Errorf(providers.InvalidCredentials,
					"credentials secret key %s is not a JSON object", login.QuoteKey(key))
			}
			fields[key], _ = json.Marshal(object)
			continue
		}
		if !utf8.Valid(value) {
			return nil, nil, providers.Errorf(providers.InvalidCredentials,
				"credentials secret key %s is not UTF-8 text", login.QuoteKey(key))
		}
		fields[key], _ = json.Marshal(string(value))
	}
	return fields, func(f string) string { return "key " + login.QuoteKey(f) }, nil
}

func checkChannel(fields map[string]json.RawMessage, name func(string) string) error {
	raw, ok := fields["channel"]
	if !ok {
		return providers.Errorf(providers.InvalidCredentials,
			"the credentials lack the AmpliFi %s (documented channels: %s)", name("channel"), strings.Join(Channels(), ", "))
	}
	var channel string
	if err := json.Unmarshal(raw, &channel); err != nil {
		return providers.Errorf(providers.InvalidCredentials, "the AmpliFi %s is not a string", name("channel"))
	}
	required, ok := requiredFields[channel]
	if !ok {
		// The value is not quoted: it is a credential, and not a known one.
		return providers.Errorf(providers.InvalidCredentials,
			"the AmpliFi %s is not a documented channel (documented channels: %s)", name("channel"), strings.Join(Channels(), ", "))
	}
	for _, field := range required {
		raw, ok := fields[field]
		if !ok {
			return providers.Errorf(providers.InvalidCredentials,
				"AmpliFi channel %q requires the %s, which the credentials lack", channel, name(field))
		}
		var value string
		if err := json.Unmarshal(raw, &value); err != nil {
			return providers.Errorf(providers.InvalidCredentials,
				"AmpliFi channel %q requires the %s to be a string", channel, name(field))
		}
		if strings.TrimSpace(value) == "" {
			return providers.Errorf(providers.InvalidCredentials,
				"AmpliFi channel %q requires the %s, which is empty", channel, name(field))
		}
	}
	return nil
}

// jsonObject decodes a JSON object into its members; anything else fails.
func jsonObject(raw []byte) (map[string]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return nil, false
	}
	return members, true
}

// parseResponse interprets an answer SendJSON did not classify: a 2xx or a
// 4xx. The documented success is
//
//	{"success": true, "userId": "...", "AFiUserId": "...", "token": "...",
//	 "dtsExpiry": "2023-12-15T15:35:24.503Z", ...}
//
// and a failure has the same shape with "success": false. A 400, 401 or
// 403 in that shape is AmpliFi's rejection of the credentials; a 401 or 403
// in any other came from something in front of it (login.Blocked), and any
// other 4xx is a request refused as sent.
func parseResponse(reply *login.Reply, obtainedAt time.Time) (*providers.Token, error) {
	status, body := reply.StatusCode, reply.Body
	// Members are looked up by exact name: encoding/json would also match
	// "Token" or "userid" to a struct field.
	members, ok := jsonObject(body)
	switch {
	case (status == http.StatusBadRequest || login.IsRejectionStatus(status)) && ok && isFalse(members["success"]):
		return nil, providers.Errorf(providers.AuthenticationFailed,
			"%s rejected the credentials (HTTP %d, success: false): check the channel's fields in the credentials Secret", displayName, status)
	case status < 200 || status >= 300:
		return nil, login.ClientError(displayName, reply, "the channel's fields")
	}

	if !ok {
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with a body that is not a JSON object", displayName, status)
	}
	var success bool
	if err := json.Unmarshal(members["success"], &success); err != nil || members["success"] == nil || isNull(members["success"]) {
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d without a boolean success member", displayName, status)
	}
	if !success {
		return nil, providers.Errorf(providers.AuthenticationFailed,
			"%s refused the login (HTTP %d, success: false): check the channel's fields in the credentials Secret", displayName, status)
	}
	token, ok := stringMember(members, "token")
	if !ok {
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with success but no token string", displayName, status)
	}
	if err := login.CheckTokenValue(displayName, token); err != nil {
		return nil, err
	}
	dtsExpiry, ok := stringMember(members, "dtsExpiry")
	if !ok {
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with success but no dtsExpiry string", displayName, status)
	}
	// RFC3339Nano parses both "2023-12-15T15:35:24.503Z" and no fraction.
	expiresAt, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(dtsExpiry))
	if err != nil {
		return nil, providers.Errorf(providers.InvalidResponse, "%s answered HTTP %d with a dtsExpiry that is not an RFC 3339 time", displayName, status)
	}
	// dtsExpiry is an absolute time in the provider's clock, the only one we have.
	if err := expiry.Check(displayName, obtainedAt, expiresAt); err != nil {
		return nil, err
	}

	extra := map[string]string{}
	userID, _ := stringMember(members, "userId")
	if userID != "" {
		extra[ExtraUserID] = userID
	}
	if afiUserID, _ := stringMember(members, "AFiUserId"); afiUserID != "" && afiUserID != userID {
		extra[ExtraAFiUserID] = afiUserID
	}
	if len(extra) == 0 {
		extra = nil
	}
	return &providers.Token{Value: token, ObtainedAt: obtainedAt, ExpiresAt: expiresAt, Extra: extra}, nil
}

func stringMember(members map[string]json.RawMessage, name string) (string, bool) {
	var s string
	raw, ok := members[name]
	if !ok || isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func isFalse(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "false" }

// stripComments blanks out // and /* */ comments outside JSON strings, so
// the documentation's examples can be pasted as they are. An unterminated
// comment is left in place for the JSON decoder to refuse.
func stripComments(src []byte) []byte {
	if !bytes.Contains(src, []byte("/")) {
		return src
	}
	out := make([]byte, 0, len(src))
	inString, escaped := false, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			out = append(out, c)
			continue
		}
		if c == '/' && i+1 < len(src) {
			rest := src[i+2:]
			switch src[i+1] {
			case '/':
				end := bytes.IndexByte(rest, '\n')
				if end < 0 {
					return append(out, ' ')
				}
				out = append(out, ' ')
				i += 1 + end // the loop moves on to the newline
				continue
			case '*':
				end := bytes.Index(rest, []byte("*/"))
				if end < 0 {
					return append(out, src[i:]...)
				}
				out = append(out, ' ')
				i += 2 + end + 1
				continue
			}
		}
		inString = c == '"'
		out = append(out, c)
	}
	return out
}
