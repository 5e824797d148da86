package providers

import "time"

// MaxTokenLifetime is the longest plausible token lifetime. A later expiry is
// a garbled answer, and trusting it would mean never logging in again.
const MaxTokenLifetime = 365 * 24 * time.Hour

// Expiry applies the clock rule to a token obtained at obtainedAt (our
// clock). The provider's clock and ours may differ, so when the token carries
// both iat and exp only their difference is trusted: the token lives exp-iat
// from the moment we obtained it. With exp alone, exp is taken as given.
// ok is false when there is no exp.
func (c JWTClaims) Expiry(obtainedAt time.Time) (expiresAt time.Time, ok bool) {
	if c.ExpiresAt.IsZero() {
		return time.Time{}, false
	}
	if c.IssuedAt.IsZero() {
		return c.ExpiresAt, true
	}
	// Sub and Add saturate, so absurd claims land far beyond MaxTokenLifetime.
	return obtainedAt.Add(c.ExpiresAt.Sub(c.IssuedAt)), true
}

// ExpiryFromJWT says when a JWT obtained at obtainedAt expires, by the clock
// rule (see JWTClaims.Expiry). A token without exp is an error, as is an
// expiry CheckExpiry refuses.
func ExpiryFromJWT(provider string, claims JWTClaims, obtainedAt time.Time) (time.Time, error) {
	expiresAt, ok := claims.Expiry(obtainedAt)
	if !ok {
		return time.Time{}, Errorf(InvalidResponse, "%s returned a token without an exp claim", provider)
	}
	return expiresAt, CheckExpiry(provider, obtainedAt, expiresAt)
}

// CheckExpiry refuses expiries that cannot be right: not after obtainedAt,
// or more than MaxTokenLifetime after it.
func CheckExpiry(provider string, obtainedAt, expiresAt time.Time) error {
	if !expiresAt.After(obtainedAt) {
		// No times in the message: they come from the response, and a
		// message that changed with every attempt would churn the status.
		return Errorf(InvalidResponse, "%s returned a token that is already expired; check the provider's clock and token lifetime", provider)
	}
	if expiresAt.Sub(obtainedAt) > MaxTokenLifetime {
		return Errorf(InvalidResponse, "%s returned a token expiring more than a year from now, which cannot be right", provider)
	}
	return nil
}
