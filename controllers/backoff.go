package controllers

import (
	"time"

	"github.com/tokensync/tokensync/providers"
)

// Retry delays after a failed login. Authentication failures back off much
// longer: hammering a login with wrong credentials can lock the account.
const (
	backoffBase     = 5 * time.Second
	backoffCap      = 5 * time.Minute
	authBackoffBase = time.Minute
	authBackoffCap  = time.Hour
	// backoffJitter is the largest share by which a delay is shortened, so
	// TokenRequests that failed together do not retry together.
	backoffJitter = 0.25
)

// backoffFor returns how long to wait before the next login after the
// attempts-th consecutive failure of the given kind: exponential from the
// base, capped, shortened by up to 25% with jitter (a fraction in [0,1)).
// A provider's Retry-After is honoured when it asks for longer, within the cap.
func backoffFor(kind providers.ErrorKind, attempts int32, jitter float64, retryAfter time.Duration) time.Duration {
	base, limit := backoffBase, backoffCap
	if kind == providers.AuthenticationFailed {
		base, limit = authBackoffBase, authBackoffCap
	}
	if attempts < 1 {
		attempts = 1
	}
	d := base
	for i := int32(1); i < attempts && d < limit; i++ {
		d *= 2
	}
	if d > limit {
		d = limit
	}
	if jitter < 0 || jitter >= 1 {
		jitter = 0
	}
	d -= time.Duration(float64(d) * backoffJitter * jitter)
	if retryAfter > d {
		d = min(retryAfter, limit)
	}
	return d
}
