package controllers

import (
	"errors"
	"net/http"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	"k8s.io/apimachinery/pkg/types"

	"github.com/tokensync/tokensync/providers"
)

// The health of a provider host. An outage of a provider is one problem,
// not one per TokenRequest: once the logins of two TokenRequests to a host
// fail as unavailable, the host is down, and its TokenRequests stop
// retrying on their own schedules. They wait on the host (the login gate
// holds their logins in the host's line), which is probed with one real
// login at a time, on a backoff of its own; the probe that succeeds brings
// the host up and releases every waiting login at once, within the host's
// rate. What is here is pure: the gate (logingate.go) passes the time in,
// keeps a hostHealth per host and acts on what it says.

// HostHealth tunes how a provider host is found down and probed. Zero
// fields mean DefaultHostHealth's; tests shorten them.
type HostHealth struct {
	// Window: two failures this close together, with no success between,
	// mark a host down (when they are of two TokenRequests and unavailable,
	// or of two credentials); and for this long after, the host is probed
	// every ProbeBase.
	Window time.Duration
	// ProbeBase and ProbeCap: a down host is probed every ProbeBase for
	// its first Window down, then on a backoff doubling to ProbeCap
	// (jittered, a Retry-After honoured up to an hour). Two probes are
	// never closer than ProbeBase.
	ProbeBase, ProbeCap time.Duration
}

// DefaultHostHealth: a minute to tell an outage from a blip; probes at the
// pace of a TokenRequest's own first fast retry (5 s) through the first
// minute of an outage, so that a short outage or a flaky host is found
// back within 5 s, for at most 12 logins a minute, then doubling to
// 5 minutes, so that a long one costs few.
var DefaultHostHealth = HostHealth{Window: time.Minute, ProbeBase: policy.BackoffBase, ProbeCap: policy.BackoffCap}

func (s HostHealth) withDefaults() HostHealth {
	if s.Window <= 0 {
		s.Window = DefaultHostHealth.Window
	}
	if s.ProbeBase <= 0 {
		s.ProbeBase = DefaultHostHealth.ProbeBase
	}
	if s.ProbeCap <= 0 {
		s.ProbeCap = DefaultHostHealth.ProbeCap
	}
	s.ProbeCap = max(s.ProbeCap, s.ProbeBase)
	return s
}

// hostOutcome is what the end of a login says of its endpoint host.
type hostOutcome int

const (
	// hostNotTried: nothing reached the host (the credentials were missing
	// or refused before sending, the endpoint policy refused the URL, the
	// manager stopped). It says nothing of the host.
	hostNotTried hostOutcome = iota
	// hostAnswered: the host answered as a working provider does: a token,
	// the provider's documented rejection of the credentials, or a 4xx
	// refusal of the request.
	hostAnswered
	// hostUnavailable: the host could not serve the request, whoever sent
	// it (providers.Error.Unavailable: refused, reset, timed out, 502, 503,
	// 504).
	hostUnavailable
	// hostRefused: a 500, 408, 429 (any 5xx but 502-504) or RequestBlocked:
	// the host may be down, or the trouble may be one account's (a quota,
	// a request the provider chokes on, a firewall rule for it).
	hostRefused
	// hostUnclear: the request left, and how it failed says nothing certain
	// of the host (a name that does not resolve, TLS, an answer the
	// provider does not document).
	hostUnclear
)

// hostOutcomeOf classifies how provider.Login ended (err nil: a token).
func hostOutcomeOf(err error) hostOutcome {
	if err == nil {
		return hostAnswered
	}
	var pe *providers.Error
	if !errors.As(err, &pe) {
		return hostUnclear
	}
	switch {
	case pe.Unavailable:
		return hostUnavailable
	case pe.Kind == providers.RequestBlocked,
		pe.Status >= 500 && pe.Status < 600, pe.Status == http.StatusRequestTimeout, pe.Status == http.StatusTooManyRequests:
		return hostRefused
	case pe.Kind == providers.AuthenticationFailed, pe.Kind == providers.InvalidCredentials && pe.Status != 0:
		return hostAnswered
	case pe.Kind == providers.EndpointNotAllowed, pe.Kind == providers.InvalidTemplate, pe.Kind == providers.InvalidCredentials:
		return hostNotTried
	}
	return hostUnclear
}

// endedLogin is a login's end as the host's health reads it.
type endedLogin struct {
	who types.NamespacedName
	// credentials identifies the account the login was made with (the
	// credentials' fingerprint); empty when unknown, then the TokenRequest
	// stands for it.
	credentials string
	outcome     hostOutcome
	retryAfter  time.Duration
	// probe: the login was the down host's probe.
	probe bool
}

// hostHealth is one host's health. The zero value is a host up.
type hostHealth struct {
	settings HostHealth
	down     bool
	// While up: the last failure counted, and the last failure as
	// unavailable. No more is needed: a second failure of another account
	// (or, unavailable, of another TokenRequest) within the window marks
	// the host down, so while it is up every failure within the window is
	// of one account, and every unavailable one of one TokenRequest.
	lastFailure, lastUnavailable hostFailure
	// While down: when it went down; the probes on the backoff's steps
	// failed in a row after its first Window down, when the host went down
	// or the last of them ended (stepFrom), when the last probe of any
	// kind ended (probedAt) and its Retry-After, and the jitter of the
	// step to the next (drawn once per step, so that the probe time
	// computed again is the same). A probe brought forward for a waiting
	// token is not a step: the backoff goes on as if it had not been, so
	// that tokens expiring through an outage do not stretch it.
	downAt             time.Time
	failedSteps        int32
	stepFrom, probedAt time.Time
	retryAfter         time.Duration
	jitter             float64
}

type hostFailure struct {
	at time.Time
	// by is the TokenRequest (lastUnavailable) or the account (lastFailure).
	by string
}

func (f hostFailure) within(now time.Time, window time.Duration) bool {
	return !f.at.IsZero() && now.Sub(f.at) <= window
}

// ended records how a login to the host ended, at now; jitter (a
// fraction in [0,1)) is for the step to the next probe, should one be
// scheduled. It reports whether the host went down or came up.
func (h *hostHealth) ended(now time.Time, l endedLogin, jitter float64) (wentDown, cameUp bool) {
	s := h.settings.withDefaults()
	account := l.credentials
	if account == "" {
		account = "TokenRequest " + l.who.String()
	}
	switch l.outcome {
	case hostAnswered:
		cameUp = h.down
		*h = hostHealth{settings: h.settings}
		return false, cameUp
	case hostNotTried:
		// A probe that reached nothing leaves the schedule as it was: the
		// next probe goes at once.
		return false, false
	case hostUnclear:
		if h.down && l.probe {
			h.probeFailed(now, l.retryAfter, jitter)
		}
		return false, false
	}
	// Unavailable or refused.
	if h.down {
		if l.probe {
			h.probeFailed(now, l.retryAfter, jitter)
		} else if l.retryAfter > 0 {
			// A login that ran when the host went down: its Retry-After
			// holds for the host (kept from probedAt, as a probe's is).
			h.retryAfter = max(h.retryAfter, min(l.retryAfter, policy.MaxRetryAfter)+now.Sub(h.probedAt))
		}
		return false, false
	}
	down := h.lastFailure.within(now, s.Window) && h.lastFailure.by != account
	if l.outcome == hostUnavailable {
		who := l.who.String()
		down = down || h.lastUnavailable.within(now, s.Window) && h.lastUnavailable.by != who
		h.lastUnavailable = hostFailure{at: now, by: who}
	}
	h.lastFailure = hostFailure{at: now, by: account}
	if !down {
		return false, false
	}
	h.down, h.downAt, h.failedSteps, h.stepFrom, h.probedAt, h.retryAfter, h.jitter = true, now, 0, now, now, l.retryAfter, jitter
	h.lastFailure, h.lastUnavailable = hostFailure{}, hostFailure{}
	return true, false
}

// probeFailed records a failed probe that ended at now: a step of the
// backoff if the step's time had come (one that doubles it, after the
// host's first Window down), else one brought forward.
func (h *hostHealth) probeFailed(now time.Time, retryAfter time.Duration, jitter float64) {
	if !now.Before(h.stepAt()) {
		if !now.Before(h.downAt.Add(h.settings.withDefaults().Window)) {
			h.failedSteps++
		}
		h.stepFrom, h.jitter = now, jitter
	}
	h.probedAt, h.retryAfter = now, retryAfter
}

// stepAt is when the backoff's next step comes: ProbeBase after the last
// through the host's first Window down (as steady as a TokenRequest's own
// first retry), then doubling, jittered.
func (h *hostHealth) stepAt() time.Time {
	s := h.settings.withDefaults()
	if h.failedSteps == 0 {
		return h.stepFrom.Add(s.ProbeBase)
	}
	return h.stepFrom.Add(policy.Doubling(s.ProbeBase, s.ProbeCap, h.failedSteps+1, h.jitter, 0))
}

// probeAt is when a down host's next probe goes: the backoff's next step
// after the host went down or its last step ended (ProbeBase through its
// first Window down, then doubling to ProbeCap, jittered), or a longer
// Retry-After of the last probe, as given up to an hour. The probe goes earlier when a waiting login must
// start by soonest to keep its token valid (the earliest such time still
// ahead; zero: none), as a TokenRequest's own retry would (retryTime); but
// never sooner than ProbeBase after the last probe, however many tokens
// expire meanwhile, and never before a Retry-After.
func (h *hostHealth) probeAt(soonest time.Time) time.Time {
	s := h.settings.withDefaults()
	step := h.stepAt()
	at := step
	if !soonest.IsZero() && soonest.Before(at) {
		at = soonest
	}
	if at.Before(step) || h.probedAt.After(h.stepFrom) {
		// Brought forward, or the step after one brought forward.
		at = policy.Latest(at, h.probedAt.Add(s.ProbeBase))
	}
	if h.retryAfter > 0 {
		at = policy.Latest(at, h.probedAt.Add(min(h.retryAfter, policy.MaxRetryAfter)))
	}
	return at
}

// idle reports whether the host has nothing to remember: up, with no
// failure within the window.
func (h *hostHealth) idle(now time.Time) bool {
	s := h.settings.withDefaults()
	return !h.down && !h.lastFailure.within(now, s.Window) && !h.lastUnavailable.within(now, s.Window)
}
