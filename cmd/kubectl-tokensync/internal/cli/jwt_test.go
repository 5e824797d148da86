package cli

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// jwtOf makes a compact JWS of header and claims with a signature of
// sentinel bytes (never verified: inspect has no key).
func jwtOf(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	seg := func(v map[string]any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return seg(header) + "." + seg(claims) + "." + base64.RawURLEncoding.EncodeToString([]byte("SIGNATURE-SENTINEL-do-not-print-0123456789"))
}

// sampleClaims are a token's claims with values that must not be printed
// unless asked for.
func sampleClaims() map[string]any {
	return map[string]any{
		"iss": "https://login.partner.example.com", "sub": "svc-payments", "aud": []string{"partner-api", "billing"},
		"iat": fixedNow.Add(-19 * time.Minute).Unix(), "nbf": fixedNow.Add(-19 * time.Minute).Unix(), "exp": fixedNow.Add(2*time.Hour + 41*time.Minute).Unix(),
		"scope": "read write", "email": "SENTINEL-EMAIL@example.com", "permissions": map[string]any{"SENTINEL-NESTED": true},
	}
}

func TestReadJWT(t *testing.T) {
	token := jwtOf(t, map[string]any{"alg": "RS256", "kid": "2026-03", "typ": "JWT"}, sampleClaims())
	v, ok := readJWT(token, []string{"scope", "missing", "iss"})
	if !ok {
		t.Fatal("not read as a JWT")
	}
	if v.Alg != "RS256" || v.Kid != "2026-03" {
		t.Errorf("alg %q kid %q", v.Alg, v.Kid)
	}
	var got []string
	for _, c := range v.Claims {
		s := c.Name + "="
		switch {
		case !c.Present:
			s += "(absent)"
		case !c.Time.IsZero():
			s += c.Time.Format(time.RFC3339)
		default:
			s += c.Value
		}
		got = append(got, s)
	}
	want := []string{
		"iss=https://login.partner.example.com", "sub=svc-payments", `aud=["partner-api","billing"]`,
		"iat=2026-03-01T11:41:00Z", "nbf=2026-03-01T11:41:00Z", "exp=2026-03-01T14:41:00Z",
		"scope=read write", "missing=(absent)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("claims\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Join(v.Others, ",") != "email,permissions" {
		t.Errorf("other claims %v, want [email permissions]", v.Others)
	}
}

func TestReadJWTRefusesWhatIsNotOne(t *testing.T) {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, token := range []string{
		"",
		"an-opaque-token-of-letters",
		b64(`{"alg":"HS256"}`) + "." + b64(`{"sub":"x"}`),
		b64(`{"alg":"HS256"}`) + "." + b64(`not json`) + ".sig",
		b64(`["alg"]`) + "." + b64(`{"sub":"x"}`) + ".sig",
		b64(`{"alg":"HS256"}`) + ".!!!." + "sig",
		b64(`null`) + "." + b64(`{"sub":"x"}`) + ".sig",
	} {
		if _, ok := readJWT(token, nil); ok {
			t.Errorf("%q read as a JWT", token)
		}
	}
	// Padded segments are read too.
	padded := base64.URLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.URLEncoding.EncodeToString([]byte(`{"sub":"ab"}`)) + "."
	if v, ok := readJWT(padded, nil); !ok || v.Alg != "none" {
		t.Errorf("a padded JWT was not read: %+v %v", v, ok)
	}
}

func TestClaimValueBoundsAndEscapes(t *testing.T) {
	long := strings.Repeat("é", 300)
	v, _ := claimValue("scope", long)
	if !strings.HasSuffix(v, "... (600 bytes)") || len(v) > maxClaimValue+20 || !strings.HasPrefix(v, "ééé") {
		t.Errorf("a long claim printed as %q", v)
	}
	if v, _ := claimValue("sub", "evil\x1b]0;title\a"); strings.ContainsAny(v, "\x1b\a") {
		t.Errorf("control characters reached the output: %q", v)
	}
	if v, tm := claimValue("exp", "1772380000"); !tm.IsZero() || v != "1772380000" {
		t.Errorf("an exp that is a string, not a NumericDate: %q %v", v, tm)
	}
	if v, tm := claimValue("exp", json.Number("-5")); !tm.IsZero() || v != "-5" {
		t.Errorf("a negative exp: %q %v", v, tm)
	}
}
