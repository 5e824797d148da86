package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The registered claims inspect always shows (RFC 7519 section 4.1): who
// issued the token, to whom and for whom, and its times. Every other
// claim's value is shown only when --claims names it.
var shownClaims = []string{"iss", "sub", "aud", "iat", "nbf", "exp"}

// timeClaims hold NumericDate values, shown as times.
var timeClaims = map[string]bool{"iat": true, "nbf": true, "exp": true}

// maxClaimValue bounds a claim value printed: a claim is at most a line.
const maxClaimValue = 200

// jwtView is what inspect says of a JWT: never the token, never its
// signature, never a claim it was not asked for.
type jwtView struct {
	// Alg and Kid are the header's algorithm and key id ("" when absent).
	Alg, Kid string
	// Claims are the registered claims and those --claims named, in that
	// order, each with its value or a note that it is absent.
	Claims []shownClaim
	// Others names the claims present but not shown.
	Others []string
}

type shownClaim struct {
	Name string
	// Value is printable text; Time is set for iat, nbf and exp.
	Value   string
	Time    time.Time
	Present bool
}

// readJWT reads a compact JWS (header.payload.signature) without verifying
// it: inspect has no key, and says only what the token claims. ok is false
// when the token is not a JWT with a JSON header and payload.
func readJWT(token string, requested []string) (jwtView, bool) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return jwtView{}, false
	}
	var header map[string]any
	var claims map[string]any
	if !decodeSegment(parts[0], &header) || !decodeSegment(parts[1], &claims) {
		return jwtView{}, false
	}
	v := jwtView{Alg: headerString(header, "alg"), Kid: headerString(header, "kid")}
	names := slices.Clone(shownClaims)
	for _, r := range requested {
		if r = strings.TrimSpace(r); r != "" && !slices.Contains(names, r) {
			names = append(names, r)
		}
	}
	for _, name := range names {
		raw, present := claims[name]
		c := shownClaim{Name: name, Present: present}
		if present {
			c.Value, c.Time = claimValue(name, raw)
		}
		v.Claims = append(v.Claims, c)
	}
	for _, name := range slices.Sorted(maps.Keys(claims)) {
		if !slices.Contains(names, name) {
			v.Others = append(v.Others, printable(name))
		}
	}
	return v, true
}

// decodeSegment decodes a base64url segment (padded or not) holding a
// JSON object.
func decodeSegment(seg string, into *map[string]any) bool {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(into) == nil && *into != nil
}

func headerString(header map[string]any, key string) string {
	s, _ := header[key].(string)
	return printable(s)
}

// claimValue renders a claim: a NumericDate as a time, a string as itself,
// anything else as compact JSON; printable and at most maxClaimValue long.
func claimValue(name string, raw any) (string, time.Time) {
	if n, ok := raw.(json.Number); ok && timeClaims[name] {
		if f, err := n.Float64(); err == nil && f > 0 && f < math.MaxInt32*4 {
			sec, frac := math.Modf(f)
			return n.String(), time.Unix(int64(sec), int64(frac*1e9)).UTC()
		}
	}
	var s string
	switch x := raw.(type) {
	case string:
		s = x
	default:
		b, err := json.Marshal(x)
		if err != nil {
			s = fmt.Sprint(x)
		} else {
			s = string(b)
		}
	}
	s = printable(s)
	if len(s) > maxClaimValue {
		cut := maxClaimValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s, time.Time{}
}
