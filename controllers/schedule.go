package controllers

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

const (
	// defaultRefreshBefore applies when a TokenRequest sets no refreshBefore.
	defaultRefreshBefore = 5 * time.Minute
	// refreshJitter is the largest share of the refresh window by which a
	// refresh is moved earlier, so tokens issued together do not all refresh
	// in the same second.
	refreshJitter = 0.10
)

// refreshAt returns when a token obtained at obtainedAt and expiring at
// expiresAt should be refreshed: window = min(refreshBefore, lifetime/3)
// before expiry, moved earlier by jitter (a fraction in [0,1)) times 10% of
// the window. The result is truncated to the second: requeues are rounded up
// to whole seconds (requeueAfter), and truncating here means a requeue can
// never fire before refreshAt and find the token "not yet due".
func refreshAt(obtainedAt, expiresAt time.Time, refreshBefore time.Duration, jitter float64) time.Time {
	if refreshBefore <= 0 {
		refreshBefore = defaultRefreshBefore
	}
	lifetime := expiresAt.Sub(obtainedAt)
	window := refreshBefore
	if lifetime > 0 && lifetime/3 < window {
		window = lifetime / 3
	}
	if jitter < 0 || jitter >= 1 {
		jitter = 0
	}
	window += time.Duration(float64(window) * refreshJitter * jitter)
	return expiresAt.Add(-window).Truncate(time.Second)
}

// requeueAfter is how long to wait from now until at, rounded up to a whole
// second so the requeue fires at or after at, never before. A time already
// passed gives the smallest positive delay.
func requeueAfter(now, at time.Time) time.Duration {
	d := at.Sub(now)
	if d <= 0 {
		return time.Second
	}
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return d
}

// jitterFor derives a stable fraction in [0,1) from a seed (the TokenRequest
// UID and the token's expiry): stable, so that a re-run reconcile computes
// the same refresh time instead of drifting, yet spread across TokenRequests.
func jitterFor(seed string) float64 {
	sum := sha256.Sum256([]byte(seed))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / float64(1<<53)
}
