package controllers

import (
	"testing"
	"time"
)

func TestRefreshAt(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name          string
		lifetime      time.Duration
		refreshBefore time.Duration
		jitter        float64
		want          time.Duration // refresh time relative to t0
	}{
		{"3h AML token, default 5m", 3 * time.Hour, 0, 0, 2*time.Hour + 55*time.Minute},
		{"3h AML token, explicit 5m", 3 * time.Hour, 5 * time.Minute, 0, 2*time.Hour + 55*time.Minute},
		{"30s token refreshed a third before expiry", 30 * time.Second, 5 * time.Minute, 0, 20 * time.Second},
		{"1h token, 10m before", time.Hour, 10 * time.Minute, 0, 50 * time.Minute},
		{"jitter moves earlier by up to 10% of window", 3 * time.Hour, 5 * time.Minute, 0.5, 2*time.Hour + 54*time.Minute + 45*time.Second},
		{"largest jitter", 3 * time.Hour, 5 * time.Minute, 0.999999, 2*time.Hour + 54*time.Minute + 30*time.Second},
		{"out-of-range jitter ignored", 3 * time.Hour, 5 * time.Minute, 7, 2*time.Hour + 55*time.Minute},
		{"sub-second results truncate earlier", 31 * time.Second, time.Hour, 0, 20 * time.Second},
		{"expiry before obtained: plain window", -time.Minute, 10 * time.Second, 0, -time.Minute - 10*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := refreshAt(t0, t0.Add(tt.lifetime), tt.refreshBefore, tt.jitter)
			if want := t0.Add(tt.want); !got.Equal(want) {
				t.Errorf("refreshAt = %s, want %s", got.Sub(t0), tt.want)
			}
			if !got.Before(t0.Add(tt.lifetime)) {
				t.Errorf("refresh at %s is not before expiry %s", got.Sub(t0), tt.lifetime)
			}
		})
	}
}

func TestRefreshAtNeverLaterThanWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, lifetime := range []time.Duration{11 * time.Second, 20 * time.Second, time.Minute, 3 * time.Hour} {
		for _, j := range []float64{0, 0.1, 0.5, 0.9, 0.99} {
			exp := t0.Add(lifetime)
			got := refreshAt(t0, exp, 5*time.Minute, j)
			window := min(5*time.Minute, lifetime/3)
			if latest := exp.Add(-window); got.After(latest) {
				t.Errorf("lifetime %s jitter %v: refresh %s after %s", lifetime, j, got, latest)
			}
			if earliest := exp.Add(-window - window/10 - time.Second); got.Before(earliest) {
				t.Errorf("lifetime %s jitter %v: refresh %s before %s", lifetime, j, got, earliest)
			}
		}
	}
}

func TestRequeueAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 300_000_000, time.UTC)
	tests := []struct {
		at   time.Time
		want time.Duration
	}{
		{now.Add(10 * time.Second), 10 * time.Second},
		{now.Add(9*time.Second + 1), 10 * time.Second},
		{now.Add(700 * time.Millisecond), time.Second},
		{now, time.Second},
		{now.Add(-time.Hour), time.Second},
	}
	for _, tt := range tests {
		got := requeueAfter(now, tt.at)
		if got != tt.want {
			t.Errorf("requeueAfter(%s) = %s, want %s", tt.at.Sub(now), got, tt.want)
		}
		if now.Add(got).Before(tt.at) {
			t.Errorf("requeue at %s fires before %s", now.Add(got), tt.at)
		}
	}
}

func TestJitterForIsStableAndInRange(t *testing.T) {
	seen := map[float64]bool{}
	for _, seed := range []string{"a", "b", "c", "uid-1/2026", "uid-2/2026"} {
		j := jitterFor(seed)
		if j < 0 || j >= 1 {
			t.Fatalf("jitterFor(%q) = %v out of [0,1)", seed, j)
		}
		if jitterFor(seed) != j {
			t.Fatalf("jitterFor(%q) not stable", seed)
		}
		seen[j] = true
	}
	if len(seen) < 5 {
		t.Errorf("jitter does not spread: %v", seen)
	}
}
