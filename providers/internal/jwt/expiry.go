package jwt

import "time"

// Expiry applies the clock rule to a token obtained at obtainedAt (our
// clock). The provider's clock and ours may differ, so when the token carries
// both iat and exp only their difference is trusted: the token lives exp-iat
// from the moment we obtained it. With exp alone, exp is taken as given.
// ok is false when there is no exp.
func (c Claims) Expiry(obtainedAt time.Time) (expiresAt time.Time, ok bool) {
	if c.ExpiresAt.IsZero() {
		return time.Time{}, false
	}
	if c.IssuedAt.IsZero() {
		return c.ExpiresAt, true
	}
	// Sub and Add saturate, so absurd claims land far beyond any plausible lifetime.
	return obtainedAt.Add(c.ExpiresAt.Sub(c.IssuedAt)), true
}
