package login

import (
	"strings"

	"github.com/tokensync/tokensync/providers"
)

// CheckTokenValue rejects token values that cannot be stored and sent on as
// an HTTP header: empty, blank, or holding control characters.
func CheckTokenValue(provider, value string) error {
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
