package login

import (
	"strings"

	"github.com/tokensync/tokensync/providers"
)

// MaxTokenBytes bounds a token. Tokens are at most a few KiB (a JWT with
// many claims); a larger one is not a login token, and each held in memory
// (a refused write keeps it until it expires) is memory a tenant chose.
const MaxTokenBytes = 256 << 10

// CheckTokenValue rejects token values that cannot be stored and sent on as
// an HTTP header: empty, blank, larger than MaxTokenBytes, or holding
// control characters. Every provider passes its token through it, whatever
// part of the answer the token came from (a body, a JSON member, a header).
func CheckTokenValue(provider, value string) error {
	if len(value) > MaxTokenBytes {
		return providers.Errorf(providers.InvalidResponse,
			"%s answered with a token larger than 256 KiB, the most tokensync takes", provider)
	}
	if strings.TrimSpace(value) == "" {
		return providers.Errorf(providers.InvalidResponse, "%s answered without a token", provider)
	}
	for _, c := range value {
		if c < 0x20 || c == 0x7f {
			return providers.Errorf(providers.InvalidResponse, "%s answered with a token holding control characters", provider)
		}
	}
	return nil
}
