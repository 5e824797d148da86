package cli

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// relative says when t is, seen from now: "in 2h41m", "3m ago", "now"
// within a second; "-" for no time.
func relative(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	switch {
	case d >= time.Second:
		return "in " + humanDuration(d)
	case d <= -time.Second:
		return humanDuration(-d) + " ago"
	default:
		return "now"
	}
}

// humanDuration is d in its two largest units, rounded down: "45s",
// "3m12s", "41m", "2h41m", "3d5h", "40d", "2y". Like kubectl's ages, but a
// token's life is hours: kubectl's "161m" would hide the "2h41m" a person
// reads at a glance.
func humanDuration(d time.Duration) string {
	const day, year = 24 * time.Hour, 365 * 24 * time.Hour
	two := func(big, small time.Duration, bigUnit, smallUnit string) string {
		s := fmt.Sprintf("%d%s", d/big, bigUnit)
		if rest := (d % big) / small; rest > 0 {
			s += fmt.Sprintf("%d%s", rest, smallUnit)
		}
		return s
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d < 10*time.Minute:
		return two(time.Minute, time.Second, "m", "s")
	case d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < day:
		return two(time.Hour, time.Minute, "h", "m")
	case d < 7*day:
		return two(day, time.Hour, "d", "h")
	case d < 2*year:
		return fmt.Sprintf("%dd", d/day)
	default:
		return fmt.Sprintf("%dy", d/year)
	}
}

// relativeMeta is relative for an optional API time.
func relativeMeta(now time.Time, t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return relative(now, t.Time)
}

// when is relative with the time itself, for the detail views:
// "in 58m (2026-03-01T13:00:00Z)".
func when(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return relative(now, t) + " (" + t.UTC().Format(time.RFC3339) + ")"
}

// whenMeta is when for an optional API time.
func whenMeta(now time.Time, t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return when(now, t.Time)
}
