package login

import (
	"strings"
	"testing"

	"github.com/tokensync/tokensync/providers"
)

func TestRequireKeys(t *testing.T) {
	creds := providers.Credentials{"a": []byte("x"), "blank": []byte(" \r\n"), "empty": nil, "binary": {0xff}}
	for _, tc := range []struct {
		keys []string
		want string
	}{
		{[]string{"a"}, ""},
		{[]string{"a", "b"}, `credentials secret is missing key "b"`},
		{[]string{"blank"}, `credentials secret key "blank" is empty`},
		{[]string{"empty"}, `credentials secret key "empty" is empty`},
		{[]string{"binary"}, `credentials secret key "binary" is not UTF-8 text`},
		{[]string{"a b"}, `credentials secret is missing key (a key with characters Secrets do not allow)`},
	} {
		err := RequireKeys(creds, tc.keys...)
		if tc.want == "" {
			if err != nil {
				t.Errorf("RequireKeys(%v) = %v", tc.keys, err)
			}
			continue
		}
		if err == nil || providers.KindOf(err) != providers.InvalidCredentials || err.Error() != tc.want {
			t.Errorf("RequireKeys(%v) = %v, want %q", tc.keys, err, tc.want)
		}
	}
}

func TestSafeName(t *testing.T) {
	for s, want := range map[string]bool{
		"secret": true, "AccessKeyUnauthorized": true, "a.b-c_d": true, strings.Repeat("a", 64): true,
		"": false, strings.Repeat("a", 65): false, "a b": false, "a'b": false, "é": false, "<b>": false,
	} {
		if got := SafeName(s, 64); got != want {
			t.Errorf("SafeName(%q) = %v", s, got)
		}
	}
}

func TestQuotable(t *testing.T) {
	creds := providers.Credentials{"secret": []byte(" hunter22 "), "short": []byte("ab")}
	for name, want := range map[string]bool{
		"AccessKeyUnauthorized": true,
		"invalid_scope":         true,
		"ab-is-short-enough":    true, // values under 4 characters count only whole
		"":                      false,
		"has space":             false,
		"hunter22":              false,
		"x-hunter22-y":          false,
		"ab":                    false,
		strings.Repeat("a", 65): false,
	} {
		if got := Quotable(name, 64, creds); got != want {
			t.Errorf("Quotable(%q) = %v, want %v", name, got, want)
		}
	}
}
