package login

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tokensync/tokensync/providers"
)

// QuoteKey quotes a credentials key for a message. Secret keys are
// restricted to [-._a-zA-Z0-9], so they are safe to show; anything else (only
// possible outside Kubernetes) is not quoted back.
func QuoteKey(key string) string {
	if SafeName(key, 253) {
		return strconv.Quote(key)
	}
	return "(a key with characters Secrets do not allow)"
}

// SafeName reports whether s is 1 to maxLen characters of [A-Za-z0-9_.-]:
// an identifier safe to quote from a provider's answer.
func SafeName(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Quotable reports whether name, text from a provider's answer (an error
// code, a reason), may be shown in a message: 1 to maxLen characters of
// [A-Za-z0-9_.-] (see SafeName) that do not echo one of the credentials,
// whole or, for values of 4 characters or more, in part.
func Quotable(name string, maxLen int, creds providers.Credentials) bool {
	if !SafeName(name, maxLen) {
		return false
	}
	for _, v := range creds {
		v := strings.TrimSpace(string(v))
		if v != "" && (name == v || len(v) >= 4 && strings.Contains(name, v)) {
			return false
		}
	}
	return true
}

// MaxCredentialBytes bounds one credential value (and AmpliFi's whole
// request body). No login credential is that large: a bigger value is
// certainly wrong and is refused without sending it.
const MaxCredentialBytes = 64 << 10

// RequireKeys checks that each key is present in creds, not blank, not
// larger than MaxCredentialBytes, and UTF-8 text (JSON would silently
// replace other bytes).
func RequireKeys(creds providers.Credentials, keys ...string) error {
	for _, k := range keys {
		v, ok := creds[k]
		if !ok {
			return providers.Errorf(providers.InvalidCredentials, "credentials secret is missing key %s", QuoteKey(k))
		}
		if len(bytes.TrimSpace(v)) == 0 {
			return providers.Errorf(providers.InvalidCredentials, "credentials secret key %s is empty", QuoteKey(k))
		}
		if len(v) > MaxCredentialBytes {
			return providers.Errorf(providers.InvalidCredentials, "credentials secret key %s is larger than 64 KiB, which no login credential is; check its value", QuoteKey(k))
		}
		if !utf8.Valid(v) {
			return providers.Errorf(providers.InvalidCredentials, "credentials secret key %s is not UTF-8 text", QuoteKey(k))
		}
	}
	return nil
}
