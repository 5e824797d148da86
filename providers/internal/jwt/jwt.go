// Package jwt reads the time claims of a JSON Web Token and applies
// tokensync's clock rule to them. It never verifies a signature: tokensync
// only needs to know when to log in again, and the provider checks the token
// it issued.
package jwt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tokensync/tokensync/providers"
)

// Claims are the time claims of a JSON Web Token.
type Claims struct {
	// IssuedAt is the iat claim, zero when absent.
	IssuedAt time.Time
	// ExpiresAt is the exp claim, zero when absent.
	ExpiresAt time.Time
}

// maxClaimSeconds is the last second of year 9999: later times are not
// plausible claims and would not survive the conversion to time.Time.
const maxClaimSeconds = 253402300799

// ParseClaims reads the iat and exp claims (NumericDate: seconds since the
// epoch, possibly fractional) of a compact JWS, without verifying its
// signature.
//
// The payload should be a JSON object. The partner API's documentation
// shows a token whose payload starts `{ uid":` (not JSON), so when strict
// decoding fails on something that still looks like an object, the numeric
// "iat" and "exp" members are read by pattern, each at most once.
//
// Errors are InvalidResponse *providers.Error values that quote nothing of
// the token.
func ParseClaims(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, providers.Errorf(providers.InvalidResponse, "not a JWT: expected three dot-separated parts")
	}
	header, err := decodeSegment(parts[0])
	if err != nil || !isJSONObject(header) {
		return Claims{}, providers.Errorf(providers.InvalidResponse, "not a JWT: the header is not a base64url-encoded JSON object")
	}
	if parts[2] != "" {
		if _, err := decodeSegment(parts[2]); err != nil {
			return Claims{}, providers.Errorf(providers.InvalidResponse, "not a JWT: the signature is not base64url-encoded")
		}
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return Claims{}, providers.Errorf(providers.InvalidResponse, "not a JWT: the payload is not base64url-encoded")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(payload, &members); err == nil && members != nil {
		return claimsFromJSON(members)
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) < 2 || trimmed[0] != '{' || trimmed[len(trimmed)-1] != '}' {
		return Claims{}, providers.Errorf(providers.InvalidResponse, "not a JWT: the payload is not a JSON object")
	}
	return claimsByPattern(trimmed)
}

func claimsFromJSON(members map[string]json.RawMessage) (Claims, error) {
	var c Claims
	for name, dst := range map[string]*time.Time{"iat": &c.IssuedAt, "exp": &c.ExpiresAt} {
		raw, ok := members[name]
		if !ok {
			continue
		}
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil || !isNumberLiteral(raw) {
			return Claims{}, providers.Errorf(providers.InvalidResponse, "the JWT's %s claim is not a number", name)
		}
		t, err := numericDate(name, string(n))
		if err != nil {
			return Claims{}, err
		}
		*dst = t
	}
	return c, nil
}

var claimPattern = map[string]*regexp.Regexp{
	"iat": regexp.MustCompile(`"iat"\s*:\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)`),
	"exp": regexp.MustCompile(`"exp"\s*:\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)`),
}

func claimsByPattern(payload []byte) (Claims, error) {
	var c Claims
	for name, dst := range map[string]*time.Time{"iat": &c.IssuedAt, "exp": &c.ExpiresAt} {
		matches := claimPattern[name].FindAllSubmatch(payload, 2)
		switch len(matches) {
		case 0:
			continue
		case 1:
		default:
			return Claims{}, providers.Errorf(providers.InvalidResponse, "the JWT's payload is not JSON and holds several %s claims", name)
		}
		t, err := numericDate(name, string(matches[0][1]))
		if err != nil {
			return Claims{}, err
		}
		*dst = t
	}
	return c, nil
}

func numericDate(name, literal string) (time.Time, error) {
	f, err := strconv.ParseFloat(literal, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxClaimSeconds {
		return time.Time{}, providers.Errorf(providers.InvalidResponse, "the JWT's %s claim is not a plausible time", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
}

// isNumberLiteral tells a JSON number from a JSON string, which
// json.Number would also accept when it holds digits.
func isNumberLiteral(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9')
}

func isJSONObject(b []byte) bool {
	var members map[string]json.RawMessage
	return json.Unmarshal(b, &members) == nil && members != nil
}

// decodeSegment decodes unpadded base64url, tolerating padding some
// encoders add anyway.
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
