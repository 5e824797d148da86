package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

const (
	// defaultRefreshBefore caps the refresh window when a TokenRequest sets
	// no refreshBefore.
	defaultRefreshBefore = 5 * time.Minute
	// refreshSpread is the share of the window over which the refreshes of
	// tokens issued together are spread, so that they do not reach the
	// provider in the same second.
	refreshSpread = 0.5
	// mountedVolumeDelay is how long the kubelet may take to update a
	// mounted Secret volume: a shorter window risks a pod reading an
	// expired token from its file.
	mountedVolumeDelay = time.Minute
)

// RefreshWindow is how long before expiry a token is refreshed. An explicit
// refreshBefore is honoured up to half the lifetime: whoever set it chose
// freshness over logins. Unset, the window is min(5m, lifetime/3): logins
// are what providers meter, and a third of the lifetime keeps a short token
// from being refreshed more than about 1.5 times per lifetime.
func RefreshWindow(obtainedAt, expiresAt time.Time, refreshBefore *time.Duration) time.Duration {
	lifetime := expiresAt.Sub(obtainedAt)
	if refreshBefore != nil && *refreshBefore > 0 {
		if lifetime > 0 && lifetime/2 < *refreshBefore {
			return lifetime / 2
		}
		return *refreshBefore
	}
	if lifetime > 0 && lifetime/3 < defaultRefreshBefore {
		return lifetime / 3
	}
	return defaultRefreshBefore
}

// RefreshAt returns when a token obtained at obtainedAt and expiring at
// expiresAt is refreshed. jitter (a fraction in [0,1), stable per token)
// spreads tokens issued together over half the window:
//   - with an explicit refreshBefore, between 1 and 1.5 windows before
//     expiry: never later than the user asked;
//   - by default, between 0.75 and 1.25 windows: on average exactly the
//     window, so the spread costs no extra logins.
//
// The result is truncated to the second: requeues are rounded up to whole
// seconds (requeueAfter), and truncating here means a requeue can never fire
// before RefreshAt and find the token "not yet due".
func RefreshAt(obtainedAt, expiresAt time.Time, refreshBefore *time.Duration, jitter float64) time.Time {
	// From the times as the Secret records them (whole seconds), so that a
	// refresh computed right after a login and one computed from the Secret
	// later agree.
	obtainedAt, expiresAt = obtainedAt.Truncate(time.Second), expiresAt.Truncate(time.Second)
	window := RefreshWindow(obtainedAt, expiresAt, refreshBefore)
	if jitter < 0 || jitter >= 1 {
		jitter = 0
	}
	start := 1 - refreshSpread/2
	if refreshBefore != nil && *refreshBefore > 0 {
		start = 1
	}
	lead := time.Duration(float64(window) * (start + refreshSpread*jitter))
	return expiresAt.Add(-lead).Truncate(time.Second)
}

// RequeueAfter is how long to wait from now until at, rounded up to a whole
// second so the requeue fires at or after at, never before. A time already
// passed gives the smallest positive delay.
func RequeueAfter(now, at time.Time) time.Duration {
	d := at.Sub(now)
	if d <= 0 {
		return time.Second
	}
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return d
}

// JitterFor derives a stable fraction in [0,1) from a seed (the TokenRequest
// UID and the token's expiry): stable, so that a re-run reconcile computes
// the same refresh time instead of drifting, yet spread across TokenRequests.
func JitterFor(seed string) float64 {
	sum := sha256.Sum256([]byte(seed))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / float64(1<<53)
}

// PlannedRefresh is when the token a TokenRequest or ClusterTokenRequest
// (uid) obtained at obtainedAt and holds until expiresAt is refreshed:
// refreshAt with the jitter seeded by the object and the token, so that
// every reader (the decision, the status, the metrics) finds the same time.
func PlannedRefresh(uid string, obtainedAt, expiresAt time.Time, refreshBefore *time.Duration) time.Time {
	return RefreshAt(obtainedAt, expiresAt, refreshBefore, JitterFor(uid+"/"+FormatTime(expiresAt)))
}
