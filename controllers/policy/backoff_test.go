package policy

import (
	"testing"
	"time"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

func TestBackoffFor(t *testing.T) {
	const (
		unavailable = tokensyncv1alpha1.ReasonProviderUnavailable
		auth        = tokensyncv1alpha1.ReasonAuthenticationFailed
		rejected    = tokensyncv1alpha1.ReasonInvalidCredentials
		invalid     = tokensyncv1alpha1.ReasonInvalidResponse
		writeFailed = tokensyncv1alpha1.ReasonSecretWriteFailed
		notFound    = tokensyncv1alpha1.ReasonCredentialsNotFound
	)
	tests := []struct {
		name       string
		reason     string
		attempts   int32
		jitter     float64
		retryAfter time.Duration
		want       time.Duration
	}{
		{"first transient failure", unavailable, 1, 0, 0, 5 * time.Second},
		{"second", unavailable, 2, 0, 0, 10 * time.Second},
		{"sixth", unavailable, 6, 0, 0, 160 * time.Second},
		{"capped at 5m", unavailable, 7, 0, 0, 5 * time.Minute},
		{"huge attempt count stays capped", unavailable, 1 << 30, 0, 0, 5 * time.Minute},
		{"zero attempts is the first", unavailable, 0, 0, 0, 5 * time.Second},
		{"jitter shortens by up to 25%", unavailable, 1, 0.5, 0, 4375 * time.Millisecond},
		{"refused Secret write is fast", writeFailed, 1, 0, 0, 5 * time.Second},
		{"missing credentials Secret is fast", notFound, 2, 0, 0, 10 * time.Second},
		{"auth failure starts at 1m", auth, 1, 0, 0, time.Minute},
		{"auth failure doubles", auth, 3, 0, 0, 4 * time.Minute},
		{"auth failure capped at 1h", auth, 10, 0, 0, time.Hour},
		{"request rejected (4xx) is slow", rejected, 1, 0, 0, time.Minute},
		{"request rejected capped at 1h", rejected, 1 << 30, 0, 0, time.Hour},
		{"undocumented answer is fast", invalid, 2, 0, 0, 10 * time.Second},
		{"Retry-After longer than backoff is honoured", unavailable, 1, 0, 42 * time.Second, 42 * time.Second},
		{"Retry-After shorter than backoff is ignored", unavailable, 3, 0, 2 * time.Second, 20 * time.Second},
		{"Retry-After of 50m is honoured as given", unavailable, 1, 0, 50 * time.Minute, 50 * time.Minute},
		{"Retry-After beyond an hour is cut to an hour", unavailable, 1, 0, 2 * time.Hour, time.Hour},
		{"Retry-After on a slow failure", auth, 1, 0, 90 * time.Minute, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BackoffFor(tt.reason, tt.attempts, tt.jitter, tt.retryAfter); got != tt.want {
				t.Errorf("backoffFor = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	for n := int32(1); n < 40; n++ {
		for _, j := range []float64{0, 0.3, 0.99} {
			d := BackoffFor(tokensyncv1alpha1.ReasonProviderUnavailable, n, j, 0)
			if d < BackoffBase*3/4 || d > BackoffCap {
				t.Fatalf("attempt %d jitter %v: %s outside [%s, %s]", n, j, d, BackoffBase*3/4, BackoffCap)
			}
			a := BackoffFor(tokensyncv1alpha1.ReasonAuthenticationFailed, n, j, 0)
			if a < slowBackoffBase*3/4 || a > slowBackoffCap {
				t.Fatalf("auth attempt %d jitter %v: %s out of bounds", n, j, a)
			}
		}
	}
}

// TestRetryTime: in the fast class a retry is never later than two seconds
// before the stored token expires (requeues round up to a second, so it
// starts at least one second before); the slow class and Retry-After keep
// their times; at most one attempt is added per outage.
func TestRetryTime(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const (
		unavailable = tokensyncv1alpha1.ReasonProviderUnavailable
		invalid     = tokensyncv1alpha1.ReasonInvalidResponse
		auth        = tokensyncv1alpha1.ReasonAuthenticationFailed
	)
	tests := []struct {
		name       string
		reason     string
		attempts   int32
		retryAfter time.Duration
		validUntil time.Time
		want       time.Time
	}{
		{"no token: plain backoff", unavailable, 3, 0, time.Time{}, now.Add(20 * time.Second)},
		{"token valid long after the backoff", unavailable, 3, 0, now.Add(time.Hour), now.Add(20 * time.Second)},
		{"backoff past expiry: clamped to two seconds before it", unavailable, 3, 0, now.Add(7 * time.Second), now.Add(5 * time.Second)},
		{"the outage ends 4s before expiry: the last retry comes in time", unavailable, 5, 0, now.Add(9 * time.Second), now.Add(7 * time.Second)},
		{"an undocumented answer is fast too", invalid, 4, 0, now.Add(3 * time.Second), now.Add(time.Second)},
		{"already within the last two seconds: no second clamp", unavailable, 2, 0, now.Add(1500 * time.Millisecond), now.Add(10 * time.Second)},
		{"expired: plain backoff", unavailable, 2, 0, now.Add(-time.Minute), now.Add(10 * time.Second)},
		{"slow class keeps its time", auth, 1, 0, now.Add(10 * time.Second), now.Add(time.Minute)},
		{"Retry-After keeps its time", unavailable, 1, 42 * time.Second, now.Add(10 * time.Second), now.Add(42 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RetryTime(now, tt.reason, tt.attempts, 0, tt.retryAfter, tt.validUntil); !got.Equal(tt.want) {
				t.Errorf("retryTime = %s, want %s", got.Sub(now), tt.want.Sub(now))
			}
		})
	}

	// An outage across the expiry: retries at the backoff steps, then one
	// at expiry - 2s, then the backoff again; never two clamped attempts.
	expiry := now.Add(30 * time.Second)
	at, clamped := now, 0
	for n := int32(1); at.Before(now.Add(5 * time.Minute)); n++ {
		next := RetryTime(at, unavailable, n, 0, 0, expiry)
		if next.Equal(expiry.Add(-expiryMargin)) {
			clamped++
		}
		if !next.After(at) {
			t.Fatalf("attempt %d: retry at %s is not after %s", n, next, at)
		}
		at = next
	}
	if clamped != 1 {
		t.Errorf("%d attempts clamped to the expiry, want exactly 1", clamped)
	}
}
