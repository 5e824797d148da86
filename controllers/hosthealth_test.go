package controllers

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	"sigs.k8s.io/controller-runtime/pkg/metrics"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/providertest"
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
		h.ended(t0.Add(-time.Millisecond), endedLogin{who: in("a", 1), credentials: "a", outcome: hostUnavailable}, 0)
		down, _ := h.ended(t0, endedLogin{who: in("b", 1), credentials: "b", outcome: hostUnavailable, retryAfter: retryAfter}, jitter)
		if !down || !h.down {
			t.Fatal("the host did not go down")
		}
		return h
	}
	probeJittered := func(h *hostHealth, at time.Time, outcome hostOutcome, retryAfter time.Duration, jitter float64) (cameUp bool) {
		_, up := h.ended(at, endedLogin{who: in("c", 1), credentials: "c", outcome: outcome, retryAfter: retryAfter, probe: true}, jitter)
		return up
	}
	probe := func(h *hostHealth, at time.Time, outcome hostOutcome, retryAfter time.Duration) (cameUp bool) {
		return probeJittered(h, at, outcome, retryAfter, 0)
	}
	t.Run("every 5 s through the first minute down, then doubling to 5 min, from each failed probe's end", func(t *testing.T) {
		h := wentDown(HostHealth{}, 0, 0)
		// Probes of 2 s: at +5, +12, ... +54, +61 (the first to end after
		// the minute), then doubling.
		steps := []float64{5, 5, 5, 5, 5, 5, 5, 5, 5, 10, 20, 40, 80, 160, 300, 300}
		at := t0
		for i, step := range steps {
			next := h.probeAt(time.Time{})
			if want := at.Add(time.Duration(step * float64(time.Second))); !next.Equal(want) {
				t.Fatalf("probe %d: at +%s after the last ended, want +%ss", i+1, next.Sub(at), fmt.Sprint(step))
			}
			at = next.Add(2 * time.Second) // the probe took 2 s
			if probe(h, at, hostUnavailable, 0) || !h.down {
				t.Fatal("a failed probe brought the host up")
			}
		}
	})
	t.Run("jittered past the first window: a step shortened by up to a quarter", func(t *testing.T) {
		h := wentDown(HostHealth{Window: time.Second}, 0, 0.5)
		if got := h.probeAt(time.Time{}).Sub(t0); got != 5*time.Second {
			t.Errorf("first probe at +%s, want +5s", got)
		}
		probeJittered(h, t0.Add(5*time.Second), hostUnavailable, 0, 0.5)
		if got := h.probeAt(time.Time{}).Sub(t0.Add(5 * time.Second)); got != 8750*time.Millisecond {
			t.Errorf("second probe %s after the first, want 8.75s (10 s less an eighth)", got)
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
		// Past the first window down: the backoff doubles.
		h := wentDown(HostHealth{Window: time.Second}, 0, 0)
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
		h := wentDown(HostHealth{Window: time.Second}, 0, 0)
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
		h := wentDown(HostHealth{Window: 100 * time.Millisecond, ProbeBase: 100 * time.Millisecond, ProbeCap: 300 * time.Millisecond}, 0, 0)
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

// answerLog sits in front of a fake provider and notes when it answered
// each login, and with which status.
type answerLog struct {
	url string
	h   http.Handler

	mu      sync.Mutex
	answers []loggedAnswer
}

type loggedAnswer struct {
	at     time.Time
	status int
}

func newAnswerLog(t *testing.T, fake *providertest.Server) *answerLog {
	t.Helper()
	l := &answerLog{h: fake.Handler()}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	l.url = srv.URL
	return l
}

func (l *answerLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	l.h.ServeHTTP(rw, r)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers = append(l.answers, loggedAnswer{at: time.Now(), status: rw.status})
}

// within counts the answers in [from, to), and the successes among them.
func (l *answerLog) within(from, to time.Time) (answers, ok int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.answers {
		if !a.at.Before(from) && a.at.Before(to) {
			answers++
			if a.status < 300 {
				ok++
			}
		}
	}
	return answers, ok
}

// firstSuccess is the first 2xx answer at or after from.
func (l *answerLog) firstSuccess(from time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.answers {
		if a.status < 300 && !a.at.Before(from) {
			return a.at, true
		}
	}
	return time.Time{}, false
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// hostUpValue is tokensync_provider_host_up for host (-1: no series).
func hostUpValue(t *testing.T, host string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "tokensync_provider_host_up" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == host {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// outageScale is TestOutageOfAHost's times divided by 5, for a real
// manager: probes from 1 s doubling to a minute, a 12 s window, 12 s
// tokens, a 12 s outage, a 2 s minimum login interval, and a rate of 50
// logins a second so that 100 logins take as long as at 10.
var outageScale = struct {
	health                     HostHealth
	lifetime, outage, interval time.Duration
	rate                       float64
}{HostHealth{Window: 12 * time.Second, ProbeBase: time.Second, ProbeCap: time.Minute}, 12 * time.Second, 12 * time.Second, 2 * time.Second, 50}

// TestOutageOfAHostWithAManager is TestOutageOfAHost against the API
// server, with a manager and the fake provider over HTTP, its times
// divided by 5: 100 TokenRequests on one host, the provider answering 503
// to every login for the outage, from a probe step before the first
// refresh is due; at most 12 attempts during it, and the logins already
// under way when the host went down (up to 3 more: in real time they
// overlap); the waiting TokenRequests say on what they wait, the host's
// gauge is 0; the probe that finds the provider back has every Secret hold
// a new token within 100 / rate + 3 s (the API server's writes), one login
// each.
func TestOutageOfAHostWithAManager(t *testing.T) {
	const n = 100
	sc := outageScale
	ns := newNamespace(t)
	fake := providertest.Start(t, providertest.WithLifetime(providertest.Partner, sc.lifetime))
	fake.SetValid(providertest.Partner, partnerCreds)
	answers := newAnswerLog(t, fake)
	host := endpointHost(answers.url)
	_, r, _ := startManager(t, managerOptions{namespaces: []string{ns}, workers: 16,
		limits: LoginLimits{PerEndpointRate: sc.rate, PerEndpointBurst: 5}, hostHealth: sc.health,
		tune: func(r *TokenRequestReconciler) { r.MinLoginInterval = sc.interval }})
	e := &env{t: t, ns: ns, fake: fake}
	e.createSecret("creds", partnerCreds)
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("tr-%d", i)
		e.createTokenRequest(names[i], providertest.Partner, "creds", withEndpoint(answers.url))
	}
	var firstDue time.Time
	for _, name := range names {
		tr := e.waitReady(name)
		if next := tr.Status.NextRefreshTime.Time; firstDue.IsZero() || next.Before(firstDue) {
			firstDue = next
		}
	}

	time.Sleep(time.Until(firstDue.Add(-sc.health.ProbeBase)))
	start := time.Now()
	fake.FailEvery(providertest.Partner, 1, providertest.Failure{Status: http.StatusServiceUnavailable})
	// Half way, the host is down and its TokenRequests say so.
	time.Sleep(sc.outage / 2)
	if !r.gate.isDown(host) {
		t.Errorf("host %s not down half way through the outage", host)
	}
	if v := hostUpValue(t, host); v != 0 {
		t.Errorf("tokensync_provider_host_up{endpoint_host=%q} = %v half way through the outage, want 0", host, v)
	}
	waiting := 0
	for _, name := range names {
		if c := readyCondition(e.tokenRequest(name)); c != nil && c.Reason == tokensyncv1alpha1.ReasonProviderUnavailable &&
			strings.Contains(c.Message, "provider host "+host+" is down") {
			waiting++
		}
	}
	if waiting == 0 {
		t.Error("no TokenRequest says it waits on the host")
	}
	time.Sleep(time.Until(start.Add(sc.outage)))
	fake.FailEvery(providertest.Partner, 0, providertest.Failure{})
	end := time.Now()
	during, _ := answers.within(start, end)
	t.Logf("%d attempts during the %s outage; %d of 100 TokenRequests said they waited on the host half way", during, sc.outage, waiting)
	if bound := 12 + DefaultLoginLimits.PerEndpointInFlight - 1; during > bound {
		t.Errorf("%d attempts during the outage, want at most %d", during, bound)
	}

	loginsBefore := fake.Logins(providertest.Partner)
	var allValid time.Time
	eventually(t, 2*time.Minute, func() error {
		now := time.Now()
		for _, name := range names {
			s, err := e.secret(name)
			if err != nil {
				return err
			}
			exp, err := time.Parse(time.RFC3339, string(s.Data[tokensyncv1alpha1.SecretKeyExpiresAt]))
			if err != nil || !now.Before(exp) || !exp.After(end.Add(sc.lifetime/2)) {
				return fmt.Errorf("%s holds no new valid token (expires %s)", name, exp)
			}
		}
		allValid = now
		return nil
	})
	probe, _ := answers.firstSuccess(end)
	limit := time.Duration(float64(n)/sc.rate*float64(time.Second)) + 3*time.Second
	t.Logf("the first probe after the outage came %s after it; every Secret held a new token %s after that probe",
		probe.Sub(end).Round(time.Millisecond), allValid.Sub(probe).Round(time.Millisecond))
	if took := allValid.Sub(probe); took > limit {
		t.Errorf("every Secret held a new token %s after the probe found the provider back, want within %s", took, limit)
	}
	if logins := fake.Logins(providertest.Partner) - loginsBefore; logins != n {
		t.Errorf("%d logins after the outage, want %d, one per TokenRequest", logins, n)
	}
	if v := hostUpValue(t, host); v != 1 {
		t.Errorf("tokensync_provider_host_up{endpoint_host=%q} = %v after the outage, want 1", host, v)
	}
}

// TestOneHostDownOthersNotDelayed: two hosts, one down for good; the other
// host's TokenRequests refresh on time, each when its token is due, and
// never wait on the down one.
func TestOneHostDownOthersNotDelayed(t *testing.T) {
	t.Parallel()
	sc := outageScale
	ns := newNamespace(t)
	downFake := providertest.Start(t, providertest.WithLifetime(providertest.Partner, sc.lifetime))
	upFake := providertest.Start(t, providertest.WithLifetime(providertest.Partner, sc.lifetime))
	for _, f := range []*providertest.Server{downFake, upFake} {
		f.SetValid(providertest.Partner, partnerCreds)
	}
	_, r, _ := startManager(t, managerOptions{namespaces: []string{ns}, hostHealth: sc.health,
		tune: func(r *TokenRequestReconciler) { r.MinLoginInterval = sc.interval }})
	e := &env{t: t, ns: ns, fake: upFake}
	e.createSecret("creds", partnerCreds)
	for i := range 10 {
		e.createTokenRequest(fmt.Sprintf("down-%d", i), providertest.Partner, "creds", withEndpoint(downFake.URL()))
		e.createTokenRequest(fmt.Sprintf("up-%d", i), providertest.Partner, "creds", withEndpoint(upFake.URL()))
	}
	uids := map[string]string{}
	for i := range 10 {
		e.waitReady(fmt.Sprintf("down-%d", i))
		uids[fmt.Sprintf("up-%d", i)] = string(e.waitReady(fmt.Sprintf("up-%d", i)).UID)
	}
	downFake.FailEvery(providertest.Partner, 1, providertest.Failure{Status: http.StatusServiceUnavailable})

	held := map[string]policy.HeldToken{}
	refreshes := 0
	var worst time.Duration
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		now := time.Now()
		for name, uid := range uids {
			s, err := e.secret(name)
			if err != nil {
				t.Fatal(err)
			}
			h, ok := heldTokenIn(s, "")
			if !ok || !now.Before(h.ExpiresAt) {
				t.Fatalf("at %s %s holds no valid token (expires %s)", now.Format(time.RFC3339Nano), name, h.ExpiresAt)
			}
			if prev, seen := held[name]; seen && !prev.ExpiresAt.Equal(h.ExpiresAt) {
				due := policy.RefreshAt(prev.ObtainedAt, prev.ExpiresAt, nil, policy.JitterFor(uid+"/"+policy.FormatTime(prev.ExpiresAt)))
				refreshes++
				worst = max(worst, h.ObtainedAt.Sub(due))
			}
			held[name] = h
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d refreshes on the host that is up, the latest %s after it was due", refreshes, worst)
	if !r.gate.isDown(endpointHost(downFake.URL())) {
		t.Error("the failing host is not down")
	}
	if refreshes < 10*2 {
		t.Errorf("%d refreshes of the 10 TokenRequests on the host that is up in 30 s, want every one (2 or 3 each)", refreshes)
	}
	// Times are recorded to the second, and requeues rounded up to one.
	if worst > 2*time.Second {
		t.Errorf("a refresh on the host that is up came %s after it was due, want within 2 s", worst)
	}
	if a, l := upFake.Attempts(providertest.Partner), upFake.Logins(providertest.Partner); a != l {
		t.Errorf("%d attempts for %d logins on the host that is up: none should fail", a, l)
	}
}
