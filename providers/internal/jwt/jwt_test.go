package jwt_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/expiry"
	"github.com/tokensync/tokensync/providers/internal/jwt"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func testJWT(payload string) string {
	return b64(`{"alg":"HS256","typ":"JWT"}`) + "." + b64(payload) + ".c2ln"
}

// partnerDocToken is the partner API documentation's example, whose payload
// starts `{ uid":` and so is not JSON.
const partnerDocToken = "eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9.eyB1aWQiOiI2NWQwZjVjOS03ZmIwLTQ1NWMtOTAzNi05ZTcyZjBhOGQwZjYiLCJhciI6WyJQYXJ0bmVyIiwiUGFydG5lckFkbWluIl0sImFrIjoiNDU3NzFlYTEtYjAxMi00YjgwLThiYTQtNDk4OTFjNWQ4ZDQ3IiwicmVhbG0iOiJQYXJ0bmVyIiwiY2EiOiIwZWE3MDAwMS0wZjU4LTQ0YTItODBhZC05NTM2MzNmZjJjYzciLCJjaWQiOiIyOTI2MzczOS0yY2Y4LTQ4M2QtYWYxNS02MTUxZGM4NDQ4YjQiLCJkb21haW4iOiIvcGFydG5lcnMtaW50IiwiaWF0IjoxNjkxMTUxMjU3LCJleHAiOjE2OTExNTQ4NTd9.wBdfxnNYap0_M-omZUmnor7lB6c3ooVK2AENYtsIcfLzofW5bvkYgQzhaVABtJsU"

func TestParseClaims(t *testing.T) {
	unix := func(sec, nsec int64) time.Time { return time.Unix(sec, nsec).UTC() }
	for _, tc := range []struct {
		name     string
		token    string
		iat, exp time.Time
		wantErr  bool
	}{
		{name: "iat and exp", token: testJWT(`{"iat":1700000000,"exp":1700003600}`), iat: unix(1700000000, 0), exp: unix(1700003600, 0)},
		{name: "float claims", token: testJWT(`{"iat":1700000000.25,"exp":1.7000036005e9}`), iat: unix(1700000000, 250e6), exp: unix(1700003600, 500e6)},
		{name: "only exp", token: testJWT(`{"sub":"x","exp":1700003600}`), exp: unix(1700003600, 0)},
		{name: "no time claims", token: testJWT(`{"sub":"x"}`)},
		{name: "epoch exp", token: testJWT(`{"exp":0}`), exp: unix(0, 0)},
		{name: "padded segments", token: testJWT(`{"exp":1}`) + "==", exp: unix(1, 0)},
		{name: "unsigned", token: b64(`{"alg":"none"}`) + "." + b64(`{"exp":1}`) + ".", exp: unix(1, 0)},
		{name: "partner documentation example", token: partnerDocToken, iat: unix(1691151257, 0), exp: unix(1691154857, 0)},
		{name: "non-JSON payload without claims", token: testJWT(`{ sub":"x"}`)},
		{name: "opaque", token: "Random Access Token", wantErr: true},
		{name: "two parts", token: b64(`{}`) + "." + b64(`{"exp":1}`), wantErr: true},
		{name: "JWE", token: "a.b.c.d.e", wantErr: true},
		{name: "header not base64", token: "!!." + b64(`{"exp":1}`) + ".", wantErr: true},
		{name: "header not JSON", token: b64("hdr") + "." + b64(`{"exp":1}`) + ".", wantErr: true},
		{name: "payload not base64", token: b64(`{}`) + ".$$.", wantErr: true},
		{name: "signature not base64", token: testJWT(`{"exp":1}`) + "$", wantErr: true},
		{name: "payload array", token: testJWT(`[{"exp":1}]`), wantErr: true},
		{name: "payload null", token: testJWT(`null`), wantErr: true},
		{name: "payload text", token: testJWT(`exp=1`), wantErr: true},
		{name: "exp string", token: testJWT(`{"exp":"1700000000"}`), wantErr: true},
		{name: "exp null", token: testJWT(`{"exp":null}`), wantErr: true},
		{name: "exp negative", token: testJWT(`{"exp":-1}`), wantErr: true},
		{name: "exp beyond year 9999", token: testJWT(`{"exp":1e300}`), wantErr: true},
		{name: "iat bool", token: testJWT(`{"iat":true,"exp":1}`), wantErr: true},
		{name: "non-JSON payload with two exp", token: testJWT(`{ a":1,"exp":1,"exp":2}`), wantErr: true},
		{name: "non-JSON payload with a bad exp", token: testJWT(`{ a":1,"exp":-5}`), wantErr: true},
		{name: "empty", token: "", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := jwt.ParseClaims(tc.token)
			if tc.wantErr {
				var pe *providers.Error
				if !errors.As(err, &pe) || pe.Kind != providers.InvalidResponse {
					t.Fatalf("err = %v, want an InvalidResponse *Error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseClaims: %v", err)
			}
			if !claims.IssuedAt.Equal(tc.iat) || !claims.ExpiresAt.Equal(tc.exp) {
				t.Errorf("claims = %+v, want iat %s exp %s", claims, tc.iat, tc.exp)
			}
		})
	}
}

const sentinel = "SENTINEL-TOKEN-3456"

func FuzzParseClaims(f *testing.F) {
	f.Add(partnerDocToken)
	f.Add(testJWT(`{"iat":1700000000,"exp":1700003600,"sub":"` + sentinel + `"}`))
	f.Add(testJWT(`{ uid":"` + sentinel + `","iat":1.5,"exp":2e3}`))
	f.Add(testJWT(`{"exp":"` + sentinel + `"}`))
	f.Add(sentinel + "." + sentinel + "." + sentinel)
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := jwt.ParseClaims(token)
		if err != nil {
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Kind != providers.InvalidResponse {
				t.Fatalf("err = %#v, want an InvalidResponse *Error", err)
			}
			if strings.Contains(pe.Message, "SENTINEL") || (len(token) >= 8 && strings.Contains(pe.Message, token)) {
				t.Fatalf("message %q quotes the token", pe.Message)
			}
			return
		}
		for _, c := range []time.Time{claims.IssuedAt, claims.ExpiresAt} {
			// Claims lie between the epoch and the end of year 9999.
			if !c.IsZero() && (c.Before(time.Unix(0, 0)) || !c.Before(time.Date(10000, 1, 1, 0, 0, 1, 0, time.UTC))) {
				t.Fatalf("implausible claim %s", c)
			}
		}
		// Whatever the claims, the clock rule must not panic and must
		// return a sane expiry or an InvalidResponse error.
		obtainedAt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		expiresAt, err := expiry.FromJWT("Test", claims, obtainedAt)
		if err != nil {
			if providers.KindOf(err) != providers.InvalidResponse {
				t.Fatalf("FromJWT: %v", err)
			}
			return
		}
		if !expiresAt.After(obtainedAt) || expiresAt.Sub(obtainedAt) > expiry.MaxLifetime {
			t.Fatalf("insane expiry %s", expiresAt)
		}
	})
}
