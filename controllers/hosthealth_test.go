package controllers

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
)

func TestHostOutcomeOf(t *testing.T) {
	unavailable := func(status int) error {
		return &providers.Error{Kind: providers.ProviderUnavailable, Message: "x", Status: status, Unavailable: true}
	}
	withStatus := func(kind providers.ErrorKind, status int) error {
		return &providers.Error{Kind: kind, Message: "x", Status: status}
	}
	for _, tt := range []struct {
		name string
		err  error
		want hostOutcome
	}{
		{"a token", nil, hostAnswered},
		{"503", unavailable(503), hostUnavailable},
		{"connection refused or timed out", unavailable(0), hostUnavailable},
		{"500", withStatus(providers.ProviderUnavailable, 500), hostRefused},
		{"501", withStatus(providers.ProviderUnavailable, 501), hostRefused},
		{"408", withStatus(providers.ProviderUnavailable, 408), hostRefused},
		{"429", withStatus(providers.ProviderUnavailable, 429), hostRefused},
		{"RequestBlocked", withStatus(providers.RequestBlocked, 403), hostRefused},
		{"the provider's rejection", withStatus(providers.AuthenticationFailed, 401), hostAnswered},
		{"a 4xx refusal of the request", withStatus(providers.InvalidCredentials, 400), hostAnswered},
		{"credentials refused before sending", withStatus(providers.InvalidCredentials, 0), hostNotTried},
		{"endpoint refused by the policy", withStatus(providers.EndpointNotAllowed, 0), hostNotTried},
		{"settings unusable", withStatus(providers.InvalidTemplate, 0), hostNotTried},
		{"name does not resolve", withStatus(providers.ProviderUnavailable, 0), hostUnclear},
		{"undocumented answer", withStatus(providers.InvalidResponse, 200), hostUnclear},
		{"redirect", withStatus(providers.InvalidResponse, 302), hostUnclear},
		{"not a provider error", fmt.Errorf("boom"), hostUnclear},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostOutcomeOf(tt.err); got != tt.want {
				t.Errorf("hostOutcomeOf = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestHostHealthDown: which failures mark a host down. Two TokenRequests'
// logins failing as unavailable within the window, with no answer
// between; a 500, 408, 429 or RequestBlocked only from two credentials.
func TestHostHealthDown(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	type login struct {
		at      time.Duration // after t0
		tr      int           // TokenRequest tr-N of namespace "ns"
		creds   string
		outcome hostOutcome
	}
	for _, tt := range []struct {
		name   string
		logins []login
		down   bool
	}{
		{name: "two TokenRequests unavailable", down: true,
			logins: []login{{0, 1, "a", hostUnavailable}, {10 * time.Second, 2, "b", hostUnavailable}}},
		{name: "two TokenRequests of one account unavailable", down: true,
			logins: []login{{0, 1, "a", hostUnavailable}, {time.Second, 2, "a", hostUnavailable}}},
		{name: "one TokenRequest unavailable again and again",
			logins: []login{{0, 1, "a", hostUnavailable}, {5 * time.Second, 1, "a", hostUnavailable}, {15 * time.Second, 1, "a", hostUnavailable}}},
		{name: "a minute and more apart",
			logins: []login{{0, 1, "a", hostUnavailable}, {61 * time.Second, 2, "b", hostUnavailable}}},
		{name: "exactly a minute apart", down: true,
			logins: []login{{0, 1, "a", hostUnavailable}, {time.Minute, 2, "b", hostUnavailable}}},
		{name: "an answer between (a token, or the provider's rejection)",
			logins: []login{{0, 1, "a", hostUnavailable}, {time.Second, 3, "c", hostAnswered}, {2 * time.Second, 2, "b", hostUnavailable}}},
		{name: "one account's 500s, from many TokenRequests",
			logins: []login{{0, 1, "a", hostRefused}, {time.Second, 2, "a", hostRefused}, {2 * time.Second, 3, "a", hostRefused}, {3 * time.Second, 4, "a", hostRefused}}},
		{name: "two accounts' 429s", down: true,
			logins: []login{{0, 1, "a", hostRefused}, {time.Second, 2, "b", hostRefused}}},
		{name: "an unavailable and another account's 500", down: true,
			logins: []login{{0, 1, "a", hostUnavailable}, {time.Second, 2, "b", hostRefused}}},
		{name: "one account's 500 and its own unavailable",
			logins: []login{{0, 1, "a", hostRefused}, {time.Second, 1, "a", hostUnavailable}}},
		{name: "unclear failures never",
			logins: []login{{0, 1, "a", hostUnclear}, {time.Second, 2, "b", hostUnclear}, {2 * time.Second, 3, "c", hostUnclear}}},
		{name: "nothing tried never",
			logins: []login{{0, 1, "a", hostNotTried}, {time.Second, 2, "b", hostNotTried}}},
		{name: "an unknown account is its TokenRequest's", down: true,
			logins: []login{{0, 1, "", hostRefused}, {time.Second, 2, "", hostRefused}}},
		{name: "down, then a login that answers brings it up",
			logins: []login{{0, 1, "a", hostUnavailable}, {time.Second, 2, "b", hostUnavailable}, {2 * time.Second, 3, "c", hostAnswered}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h hostHealth
			for i, l := range tt.logins {
				h.ended(t0.Add(l.at), endedLogin{who: in("ns", l.tr), credentials: l.creds, outcome: l.outcome}, 0)
				if i < len(tt.logins)-1 && tt.down && h.down {
					t.Fatalf("down after login %d of %d", i+1, len(tt.logins))
				}
			}
			if h.down != tt.down {
				t.Errorf("down = %v, want %v", h.down, tt.down)
			}
			if !tt.down && !h.idle(t0.Add(tt.logins[len(tt.logins)-1].at+time.Minute+time.Nanosecond)) {
				t.Error("not idle a minute after the last login")
			}
		})
	}
}

// TestHostHealthProbes: when a down host's probes go, and what their ends
// do to it.
func TestHostHealthProbes(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	wentDown := func(settings HostHealth, retryAfter time.Duration, jitter float64) *hostHealth {
		h := &hostHealth{settings: settings}
		h.ended(t0.Add(-time.Second), endedLogin{who: in("a", 1), credentials: "a", outcome: hostUnavailable}, 0)
		down, _ := h.ended(t0, endedLogin{who: in("b", 1), credentials: "b", outcome: hostUnavailable, retryAfter: retryAfter}, jitter)
		if !down || !h.down {
			t.Fatal("the host did not go down")
		}
		return h
	}
	probe := func(h *hostHealth, at time.Time, outcome hostOutcome, retryAfter time.Duration) (cameUp bool) {
		_, up := h.ended(at, endedLogin{who: in("c", 1), credentials: "c", outcome: outcome, retryAfter: retryAfter, probe: true}, 0)
		return up
	}
	t.Run("5 s doubling to 5 min, from each failed probe's end", func(t *testing.T) {
		h := wentDown(HostHealth{}, 0, 0)
		at := t0
		for _, step := range []time.Duration{5, 10, 20, 40, 80, 160, 300, 300} {
			next := h.probeAt(time.Time{})
			if want := at.Add(step * time.Second); !next.Equal(want) {
				t.Fatalf("after %d failed probes the next is at +%s, want +%s", h.failedSteps, next.Sub(at), want.Sub(at))
			}
			at = next.Add(2 * time.Second) // the probe took 2 s
			if probe(h, at, hostUnavailable, 0) || !h.down {
				t.Fatal("a failed probe brought the host up")
			}
		}
	})
	t.Run("jittered: shortened by up to a quarter", func(t *testing.T) {
		h := wentDown(HostHealth{}, 0, 0.5)
		if got := h.probeAt(time.Time{}).Sub(t0); got != 4375*time.Millisecond {
			t.Errorf("first probe at +%s, want +4.375s", got)
		}
	})
	t.Run("Retry-After honoured up to an hour", func(t *testing.T) {
		h := wentDown(HostHealth{}, 90*time.Second, 0)
		if got := h.probeAt(t0.Add(10 * time.Second)).Sub(t0); got != 90*time.Second {
			t.Errorf("first probe at +%s, want the Retry-After's 90s, a waiting token notwithstanding", got)
		}
		probe(h, t0.Add(90*time.Second), hostRefused, 3*time.Hour)
		if got := h.probeAt(time.Time{}).Sub(t0.Add(90 * time.Second)); got != time.Hour {
			t.Errorf("probe after a 3 h Retry-After at +%s, want an hour", got)
		}
	})
	t.Run("a waiting token brings the probe forward, not closer than the base to the last", func(t *testing.T) {
		h := wentDown(HostHealth{}, 0, 0)
		probe(h, t0.Add(5*time.Second), hostUnavailable, 0)
		probe(h, t0.Add(15*time.Second), hostUnavailable, 0) // next step: 20 s, at +35s
		for _, tt := range []struct{ soonest, want time.Duration }{
			{0, 35 * time.Second},                    // none waiting with a valid token
			{60 * time.Second, 35 * time.Second},     // its token outlives the step
			{25 * time.Second, 25 * time.Second},     // must start by +25s
			{16 * time.Second, 20 * time.Second},     // not within 5 s of the last probe
			{35 * time.Second, 35 * time.Second},     // the step itself
			{34 * time.Second, 34 * time.Second},     // a second before the step
			{21 * time.Second, 21 * time.Second},     // just past the floor
			{19 * time.Second, 20 * time.Second},     // just short of it
			{500 * time.Second, 35 * time.Second},    // far ahead
			{20*time.Second + 1, 20*time.Second + 1}, // floor by a nanosecond
		} {
			var soonest time.Time
			if tt.soonest != 0 {
				soonest = t0.Add(tt.soonest)
			}
			if got := h.probeAt(soonest).Sub(t0); got != tt.want {
				t.Errorf("must start by +%s: probe at +%s, want +%s", tt.soonest, got, tt.want)
			}
		}
		// A probe brought forward is not a step: the backoff's next step
		// stays, only kept ProbeBase from it.
		probe(h, t0.Add(25*time.Second), hostUnavailable, 0)
		if got := h.probeAt(time.Time{}).Sub(t0); got != 35*time.Second {
			t.Errorf("after a probe brought forward to +25s, the step at +%s, want +35s", got)
		}
		probe(h, t0.Add(33*time.Second), hostUnavailable, 0)
		if got := h.probeAt(time.Time{}).Sub(t0); got != 38*time.Second {
			t.Errorf("after one at +33s, the step at +%s, want +38s", got)
		}
		probe(h, t0.Add(38*time.Second), hostUnavailable, 0)
		if got := h.probeAt(time.Time{}).Sub(t0); got != 78*time.Second {
			t.Errorf("after the step at +38s, the next at +%s, want +78s (40 s on)", got)
		}
	})
	t.Run("a probe that reached nothing leaves the schedule", func(t *testing.T) {
		h := wentDown(HostHealth{}, 0, 0)
		before := h.probeAt(time.Time{})
		probe(h, t0.Add(5*time.Second), hostNotTried, 0)
		if after := h.probeAt(time.Time{}); !after.Equal(before) || !h.down {
			t.Errorf("next probe moved from %s to %s", before, after)
		}
	})
	t.Run("an unclear probe is a failed one", func(t *testing.T) {
		h := wentDown(HostHealth{}, 0, 0)
		probe(h, t0.Add(5*time.Second), hostUnclear, 0)
		if got := h.probeAt(time.Time{}).Sub(t0); got != 15*time.Second || !h.down {
			t.Errorf("next probe at +%s, want +15s", got)
		}
	})
	t.Run("a probe that answers brings the host up and forgets the outage", func(t *testing.T) {
		h := wentDown(HostHealth{}, 0, 0)
		probe(h, t0.Add(5*time.Second), hostUnavailable, 0)
		if !probe(h, t0.Add(15*time.Second), hostAnswered, 0) || h.down {
			t.Fatal("not up after the probe answered")
		}
		// Down again: the probes start over at the base.
		h.ended(t0.Add(20*time.Second), endedLogin{who: in("a", 1), outcome: hostUnavailable}, 0)
		h.ended(t0.Add(21*time.Second), endedLogin{who: in("b", 1), outcome: hostUnavailable}, 0)
		if got := h.probeAt(time.Time{}).Sub(t0.Add(21 * time.Second)); !h.down || got != 5*time.Second {
			t.Errorf("down %v, first probe of the second outage at +%s, want +5s", h.down, got)
		}
	})
	t.Run("shortened settings", func(t *testing.T) {
		h := wentDown(HostHealth{ProbeBase: 100 * time.Millisecond, ProbeCap: 300 * time.Millisecond}, 0, 0)
		at := t0
		for _, step := range []time.Duration{100, 200, 300, 300} {
			next := h.probeAt(time.Time{})
			if got := next.Sub(at); got != step*time.Millisecond {
				t.Fatalf("step %s, want %s", got, step*time.Millisecond)
			}
			at = next
			probe(h, at, hostUnavailable, 0)
		}
	})
	t.Run("a login running when the host went down: its Retry-After holds", func(t *testing.T) {
		h := wentDown(HostHealth{}, 0, 0)
		h.ended(t0.Add(time.Second), endedLogin{who: in("d", 1), outcome: hostRefused, retryAfter: 30 * time.Second}, 0)
		if got := h.probeAt(time.Time{}).Sub(t0); got != 31*time.Second {
			t.Errorf("first probe at +%s, want +31s", got)
		}
	})
}
