package policy

import (
	"time"
)

// Retry delays after a failure, by class.
const (
	// The fast class heals by itself: the provider is down or slow (5xx,
	// 408, 429, network errors, timeouts), or a Secret write was refused.
	BackoffBase = 5 * time.Second
	BackoffCap  = 5 * time.Minute
	// The slow class will not heal by itself: the provider rejected the
	// credentials or the request (every 4xx but 408 and 429), or the
	// provider settings cannot be used (InvalidTemplate). Retrying fast
	// would only lock an account or fill the provider's logs. A 2xx answer
	// the provider does not document (InvalidResponse) stays in the fast
	// class: a truncated or garbled answer is as often a passing fault.
	slowBackoffBase = time.Minute
	slowBackoffCap  = time.Hour
	// MaxRetryAfter is the longest provider Retry-After honoured as given.
	MaxRetryAfter = time.Hour
	// BackoffJitter is the largest share by which a delay is shortened, so
	// TokenRequests that failed together do not retry together.
	BackoffJitter = 0.25
)

// BackoffFor returns how long to wait before the next attempt after the
// attempts-th consecutive failure with the given reason: exponential from
// the class's base, capped, shortened by up to 25% with jitter (a fraction
// in [0,1)). A provider's Retry-After is honoured as given when it asks for
// longer, up to an hour.
func BackoffFor(reason string, attempts int32, jitter float64, retryAfter time.Duration) time.Duration {
	base, limit := BackoffBase, BackoffCap
	if RuleOf(reason).Class == RetrySlow {
		base, limit = slowBackoffBase, slowBackoffCap
	}
	return Doubling(base, limit, attempts, jitter, retryAfter)
}

// Doubling is the n-th step of a backoff Doubling from base to limit,
// shortened by up to 25% with jitter (a fraction in [0,1)), or a
// Retry-After when it asks for longer, up to maxRetryAfter. A TokenRequest's
// retries (backoffFor) and a down host's probes (hostHealth) step alike.
func Doubling(base, limit time.Duration, n int32, jitter float64, retryAfter time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	d := base
	for i := int32(1); i < n && d < limit; i++ {
		d *= 2
	}
	if d > limit {
		d = limit
	}
	if jitter < 0 || jitter >= 1 {
		jitter = 0
	}
	d -= time.Duration(float64(d) * BackoffJitter * jitter)
	if retryAfter > d {
		d = min(retryAfter, MaxRetryAfter)
	}
	return d
}

// expiryMargin is how long before its token expires the fast class's last
// retry is scheduled, at the latest. Requeues are rounded up to whole
// seconds (requeueAfter), so an attempt scheduled 2 s before expiry starts
// at least a second before it, with time left to write the new token.
const expiryMargin = 2 * time.Second

// RetryTime is when to try again after the attempts-th consecutive failure
// with the given reason, at now: backoffFor's delay, except that in the fast
// class, while the stored token is valid (validUntil; zero when there is
// none), the retry is never later than expiryMargin before it expires. An
// outage that ends a few seconds before expiry must not leave an expired
// token in the Secret until the next backoff step; the clamp costs at most
// one more attempt per outage, since the attempt it schedules comes too late
// to be clamped again. The slow class (the provider refused the
// credentials or the request) and a provider's Retry-After keep their
// times: retrying those early would only lock an account or be refused.
func RetryTime(now time.Time, reason string, attempts int32, jitter float64, retryAfter time.Duration, validUntil time.Time) time.Time {
	at := now.Add(BackoffFor(reason, attempts, jitter, retryAfter))
	if RuleOf(reason).Class == RetrySlow || retryAfter > 0 || validUntil.IsZero() {
		return at
	}
	if last := validUntil.Add(-expiryMargin); last.After(now) && at.After(last) {
		return last
	}
	return at
}
