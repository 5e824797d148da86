package policy

import (
	"testing"
	"time"
)

func dur(d time.Duration) *time.Duration { return &d }

func TestRefreshAt(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name          string
		lifetime      time.Duration
		refreshBefore *time.Duration
		jitter        float64
		want          time.Duration // refresh time relative to t0
	}{
		// Unset: window min(5m, lifetime/3), spread over 0.75..1.25 windows.
		{"3h AML token, default, middle of the spread", 3 * time.Hour, nil, 0.5, 2*time.Hour + 55*time.Minute},
		{"3h AML token, default, latest", 3 * time.Hour, nil, 0, 2*time.Hour + 56*time.Minute + 15*time.Second},
		{"3h AML token, default, earliest", 3 * time.Hour, nil, 0.999999, 2*time.Hour + 53*time.Minute + 45*time.Second},
		{"60s token, default window 20s", time.Minute, nil, 0.5, 40 * time.Second},
		{"3min token, default window 60s", 3 * time.Minute, nil, 0.5, 2 * time.Minute},
		// Explicit: honoured up to half the lifetime, spread 1..1.5 windows.
		{"3h AML token, explicit 5m, latest", 3 * time.Hour, dur(5 * time.Minute), 0, 2*time.Hour + 55*time.Minute},
		{"3h AML token, explicit 5m, middle", 3 * time.Hour, dur(5 * time.Minute), 0.5, 2*time.Hour + 53*time.Minute + 45*time.Second},
		{"3min token, explicit 2m is cut to half the lifetime", 3 * time.Minute, dur(2 * time.Minute), 0, 90 * time.Second},
		{"3min token, explicit 80s honoured (more than a third)", 3 * time.Minute, dur(80 * time.Second), 0, 100 * time.Second},
		{"30s token, explicit 5m: half the lifetime", 30 * time.Second, dur(5 * time.Minute), 0, 15 * time.Second},
		{"1h token, 10m before", time.Hour, dur(10 * time.Minute), 0, 50 * time.Minute},
		{"out-of-range jitter ignored", 3 * time.Hour, dur(5 * time.Minute), 7, 2*time.Hour + 55*time.Minute},
		{"sub-second results truncate earlier", 31 * time.Second, dur(time.Hour), 0, 15 * time.Second},
		{"expiry before obtained: plain window", -time.Minute, dur(10 * time.Second), 0, -time.Minute - 10*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RefreshAt(t0, t0.Add(tt.lifetime), tt.refreshBefore, tt.jitter)
			if want := t0.Add(tt.want); !got.Equal(want) {
				t.Errorf("refreshAt = %s, want %s", got.Sub(t0), tt.want)
			}
			if !got.Before(t0.Add(tt.lifetime)) {
				t.Errorf("refresh at %s is not before expiry %s", got.Sub(t0), tt.lifetime)
			}
		})
	}
}

// TestRefreshAtSpread: refreshes of tokens issued together spread over half
// the window; an explicit refreshBefore is never exceeded, and the default
// costs on average no more logins than refreshing exactly a window before.
func TestRefreshAtSpread(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, lifetime := range []time.Duration{11 * time.Second, 20 * time.Second, time.Minute, 3 * time.Hour} {
		exp := t0.Add(lifetime)
		var sumLead time.Duration
		const n = 1000
		for i := 0; i < n; i++ {
			j := float64(i) / n
			explicit := RefreshAt(t0, exp, dur(5*time.Second), j)
			w := RefreshWindow(t0, exp, dur(5*time.Second))
			if latest := exp.Add(-w); explicit.After(latest) {
				t.Errorf("lifetime %s jitter %v: explicit refresh %s later than refreshBefore allows (%s)", lifetime, j, explicit, latest)
			}
			def := RefreshAt(t0, exp, nil, j)
			wd := RefreshWindow(t0, exp, nil)
			if def.Before(exp.Add(-wd*5/4-time.Second)) || def.After(exp.Add(-wd*3/4)) {
				t.Errorf("lifetime %s jitter %v: default refresh %s outside 0.75..1.25 windows", lifetime, j, def.Sub(t0))
			}
			sumLead += exp.Sub(def)
		}
		wd := RefreshWindow(t0, exp, nil)
		if mean := sumLead / n; mean > wd+time.Second || mean < wd-time.Second {
			t.Errorf("lifetime %s: mean default lead %s, want about the window %s", lifetime, mean, wd)
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
		got := RequeueAfter(now, tt.at)
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
		j := JitterFor(seed)
		if j < 0 || j >= 1 {
			t.Fatalf("jitterFor(%q) = %v out of [0,1)", seed, j)
		}
		if JitterFor(seed) != j {
			t.Fatalf("jitterFor(%q) not stable", seed)
		}
		seen[j] = true
	}
	if len(seen) < 5 {
		t.Errorf("jitter does not spread: %v", seen)
	}
}
