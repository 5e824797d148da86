// Package expiry holds the rules every provider applies to the expiry it
// computes for a token: an expiry that cannot be right is an invalid answer,
// not a token to keep.
package expiry

import (
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/jwt"
)

// MaxLifetime is the longest plausible token lifetime. A later expiry is a
// garbled answer, and trusting it would mean never logging in again.
const MaxLifetime = 365 * 24 * time.Hour

// FromJWT says when a JWT obtained at obtainedAt expires, by the clock rule
// (see jwt.Claims.Expiry). A token without exp is an error, as is an expiry
// Check refuses.
func FromJWT(provider string, claims jwt.Claims, obtainedAt time.Time) (time.Time, error) {
	expiresAt, ok := claims.Expiry(obtainedAt)
	if !ok {
		return time.Time{}, providers.Errorf(providers.InvalidResponse, "%s returned a token without an exp claim", provider)
	}
	return expiresAt, Check(provider, obtainedAt, expiresAt)
}

// Check refuses expiries that cannot be right: not after obtainedAt, or more
// than MaxLifetime after it.
func Check(provider string, obtainedAt, expiresAt time.Time) error {
	if !expiresAt.After(obtainedAt) {
		// No times in the message: they come from the response, and a
		// message that changed with every attempt would churn the status.
		return providers.Errorf(providers.InvalidResponse, "%s returned a token that is already expired; check the provider's clock and token lifetime", provider)
	}
	if expiresAt.Sub(obtainedAt) > MaxLifetime {
		return providers.Errorf(providers.InvalidResponse, "%s returned a token expiring more than a year from now, which cannot be right", provider)
	}
	return nil
}
