package controllers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// shim sits in front of a fake provider: it timestamps every request and
// can answer the next ones itself with faults the fake lacks. Requests it
// does not answer go to the fake, with the fake's own scripted faults.
type shim struct {
	fake    *providertest.Server
	srv     *httptest.Server
	closing chan struct{}

	mu       sync.Mutex
	next     []shimFault
	requests []time.Time
}

type shimFault int

const (
	// shimHang reads the request and never answers: the client gives up.
	shimHang shimFault = iota
	// shimTrickle answers 201 at once, then one byte of body every 250ms.
	shimTrickle
	// shimTruncatedJSON answers 200 with JSON cut short.
	shimTruncatedJSON
)

func startShim(t *testing.T, fake *providertest.Server) *shim {
	t.Helper()
	s := &shim{fake: fake, closing: make(chan struct{})}
	s.srv = httptest.NewServer(s)
	t.Cleanup(func() {
		close(s.closing)
		s.srv.Close()
	})
	return s
}

func (s *shim) URL() string { return s.srv.URL }

// failNext makes the shim answer the next n requests with f.
func (s *shim) failNext(n int, f shimFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.next = append(s.next, f)
	}
}

// times returns when each request arrived.
func (s *shim) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.requests...)
}

func (s *shim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, time.Now())
	fault, scripted := shimFault(0), len(s.next) > 0
	if scripted {
		fault, s.next = s.next[0], s.next[1:]
	}
	s.mu.Unlock()
	if !scripted {
		s.fake.Handler().ServeHTTP(w, r)
		return
	}
	// Read the request first: the server notices an abandoned request only
	// once it has.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	switch fault {
	case shimHang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		panic(http.ErrAbortHandler)
	case shimTrickle:
		body := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + strings.Repeat("A", 400)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusCreated)
		flusher, _ := w.(http.Flusher)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for i := range len(body) {
			if _, err := io.WriteString(w, body[i:i+1]); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			case <-s.closing:
				return
			}
		}
	case shimTruncatedJSON:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"error": false, "status": "SUCCESS", "data": {"access_token": "eyJhbGciOiJIUzI1NiJ9.e30`)
	}
}

// providerFault is one way a provider can fail: failures bad answers in a
// row, then healthy again by itself (or, when capped, after a new
// force-refresh value: a capped Retry-After parks the retry for 5 minutes).
type providerFault struct {
	name     string
	provider string
	failures int
	inject   func(f *providertest.Server, s *shim, provider string, n int)
	reason   string
	// retryAfter is the provider's Retry-After: the next attempt waits at least that.
	retryAfter time.Duration
	capped     bool
}

func fakeFailure(f providertest.Failure) func(*providertest.Server, *shim, string, int) {
	return func(fake *providertest.Server, _ *shim, provider string, n int) { fake.FailNextWith(provider, n, f) }
}

func shimFailure(fault shimFault) func(*providertest.Server, *shim, string, int) {
	return func(_ *providertest.Server, s *shim, _ string, n int) { s.failNext(n, fault) }
}

// faultRun is what the observer saw of one fault case.
type faultRun struct {
	providerFault
	fake *providertest.Server
	shim *shim
	name string // the TokenRequest's

	first      string // the token before the fault
	requestsAt int    // shim requests before the fault

	failure     *tokensyncv1alpha1.TokenRequest // as first seen Ready=False
	maxFailed   int32
	tokens      map[string]bool // every token the Secret held
	emptySecret bool
	healed      bool // the capped case's second force-refresh was set
	recovered   *tokensyncv1alpha1.TokenRequest
}

// minBackoff is the shortest delay backoffFor can give after the attempts-th
// failure (full jitter), for ProviderUnavailable and InvalidResponse.
func minBackoff(attempts int) time.Duration {
	d := backoffBase
	for i := 1; i < attempts && d < backoffCap; i++ {
		d *= 2
	}
	d = min(d, backoffCap)
	return d - time.Duration(float64(d)*backoffJitter)
}

// TestProviderFaults drives one TokenRequest per provider fault through a
// forced refresh that fails, and proves for each: the Secret keeps the last
// valid token, the reason is right, attempts are spaced by the backoff (and
// by Retry-After, within the cap) and no more are made, and the
// TokenRequest recovers with one login when the provider heals.
//
// The cases share one manager and run concurrently; one observer loop
// records what each went through, and the subtests then check it.
func TestProviderFaults(t *testing.T) {
	t.Parallel()
	cases := []providerFault{
		{name: "http-500", provider: providertest.Partner, failures: 2,
			inject: fakeFailure(providertest.Failure{Status: http.StatusInternalServerError}), reason: tokensyncv1alpha1.ReasonProviderUnavailable},
		{name: "http-503", provider: providertest.AML, failures: 2,
			inject: fakeFailure(providertest.Failure{Status: http.StatusServiceUnavailable}), reason: tokensyncv1alpha1.ReasonProviderUnavailable},
		{name: "http-429", provider: providertest.AmpliFi, failures: 2,
			inject: fakeFailure(providertest.Failure{Status: http.StatusTooManyRequests}), reason: tokensyncv1alpha1.ReasonProviderUnavailable},
		{name: "http-503-retry-after-20", provider: providertest.Partner, failures: 1, retryAfter: 20 * time.Second,
			inject: fakeFailure(providertest.Failure{Status: http.StatusServiceUnavailable, RetryAfter: "20"}), reason: tokensyncv1alpha1.ReasonProviderUnavailable},
		{name: "http-429-retry-after-20", provider: providertest.AML, failures: 1, retryAfter: 20 * time.Second,
			inject: fakeFailure(providertest.Failure{Status: http.StatusTooManyRequests, RetryAfter: "20"}), reason: tokensyncv1alpha1.ReasonProviderUnavailable},
		{name: "http-429-retry-after-beyond-cap", provider: providertest.Partner, failures: 1, retryAfter: maxRetryAfter, capped: true,
			inject: fakeFailure(providertest.Failure{Status: http.StatusTooManyRequests, RetryAfter: "86400"}), reason: tokensyncv1alpha1.ReasonProviderUnavailable},
		{name: "hang-beyond-timeout", provider: providertest.Partner, failures: 2,
			inject: shimFailure(shimHang), reason: tokensyncv1alpha1.ReasonProviderUnavailable},
		{name: "connection-reset", provider: providertest.AML, failures: 2,
			inject: fakeFailure(providertest.Failure{Fault: providertest.ResetConnection}), reason: tokensyncv1alpha1.ReasonProviderUnavailable},
		{name: "trickling-body", provider: providertest.Partner, failures: 2,
			inject: shimFailure(shimTrickle), reason: tokensyncv1alpha1.ReasonProviderUnavailable},
		{name: "truncated-json", provider: providertest.AML, failures: 2,
			inject: shimFailure(shimTruncatedJSON), reason: tokensyncv1alpha1.ReasonInvalidResponse},
		{name: "html-not-json", provider: providertest.AmpliFi, failures: 2,
			inject: fakeFailure(providertest.Failure{Fault: providertest.NotJSON}), reason: tokensyncv1alpha1.ReasonInvalidResponse},
		{name: "2xx-without-token", provider: providertest.Partner, failures: 2,
			inject: fakeFailure(providertest.Failure{Fault: providertest.NoToken}), reason: tokensyncv1alpha1.ReasonInvalidResponse},
		{name: "2xx-without-token", provider: providertest.AML, failures: 2,
			inject: fakeFailure(providertest.Failure{Fault: providertest.NoToken}), reason: tokensyncv1alpha1.ReasonInvalidResponse},
		{name: "huge-body", provider: providertest.AmpliFi, failures: 2,
			inject: fakeFailure(providertest.Failure{Fault: providertest.HugeBody}), reason: tokensyncv1alpha1.ReasonInvalidResponse},
	}

	// A 2s client timeout keeps hangs and trickles short.
	const clientTimeout = 2 * time.Second
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: clientTimeout})
	})
	runs := make([]*faultRun, len(cases))
	for i, c := range cases {
		fake := providertest.Start(t)
		run := &faultRun{providerFault: c, fake: fake, shim: startShim(t, fake), name: fmt.Sprintf("%s-%s", c.name, c.provider), tokens: map[string]bool{}}
		e.createSecret(run.name+"-creds", credsFor(c.provider))
		e.createTokenRequest(run.name, c.provider, run.name+"-creds", withEndpoint(run.shim.URL()))
		runs[i] = run
	}
	for _, run := range runs {
		e.waitReady(run.name)
		run.first = e.token(run.name)
		run.tokens[run.first] = true
	}
	for _, run := range runs {
		run.requestsAt = len(run.shim.times())
		run.inject(run.fake, run.shim, run.provider, run.failures)
		e.forceRefresh(run.name, "fault")
	}

	// Observe until every case has recovered.
	deadline := time.Now().Add(2 * readyTimeout)
	for pending := len(runs); pending > 0; {
		if time.Now().After(deadline) {
			break
		}
		pending = 0
		for _, run := range runs {
			if run.recovered != nil {
				continue
			}
			pending++
			s, err := e.secret(run.name)
			tok := ""
			if err == nil {
				tok = string(s.Data[tokensyncv1alpha1.SecretKeyToken])
			}
			if tok == "" {
				run.emptySecret = true
			} else {
				run.tokens[tok] = true
			}
			tr := e.tokenRequest(run.name)
			run.maxFailed = max(run.maxFailed, tr.Status.FailedAttempts)
			c := readyCondition(tr)
			switch {
			case c != nil && c.Status == metav1.ConditionFalse && run.failure == nil:
				run.failure = tr
			case c != nil && c.Status == metav1.ConditionTrue && run.failure != nil &&
				tr.Status.FailedAttempts == 0 && tok != "" && tok != run.first:
				run.recovered = tr
			}
			if run.capped && run.failure != nil && !run.healed {
				// The retry is parked for 5 minutes: a new force-refresh
				// value retries at once.
				run.healed = true
				e.forceRefresh(run.name, "heal")
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	// No attempt beyond the recovery: give stray retries time to show.
	time.Sleep(3 * time.Second)

	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			e := e.in(t)
			if run.failure == nil {
				t.Fatalf("never Ready=False after the forced refresh (now %+v)", readyCondition(e.tokenRequest(run.name)))
			}
			c := readyCondition(run.failure)
			if c.Reason != run.reason {
				t.Errorf("reason %s, want %s (message %q)", c.Reason, run.reason, c.Message)
			}
			if !strings.Contains(c.Message, "stays valid until") {
				t.Errorf("message does not say the previous token still works: %q", c.Message)
			}
			e.waitEvent(run.name, "Warning/"+run.reason)
			if run.recovered == nil {
				t.Fatalf("not recovered within %s (Ready %+v, failedAttempts %d)", 2*readyTimeout,
					readyCondition(e.tokenRequest(run.name)), e.tokenRequest(run.name).Status.FailedAttempts)
			}
			final := e.token(run.name)
			if run.emptySecret || len(run.tokens) != 2 || !run.tokens[final] {
				t.Errorf("the Secret held %d distinct tokens (empty at some point: %v), want the first, then the one after recovery", len(run.tokens), run.emptySecret)
			}
			if n := run.fake.Logins(run.provider); n != 2 {
				t.Errorf("%d logins, want 2: the first token and the one after recovery", n)
			}

			// Attempts: the failures and one success, spaced by the backoff.
			times := run.shim.times()[run.requestsAt:]
			if len(times) != run.failures+1 {
				t.Fatalf("%d requests since the fault, want %d failures and 1 success", len(times), run.failures)
			}
			if int(run.maxFailed) != run.failures {
				t.Errorf("failedAttempts reached %d, want %d", run.maxFailed, run.failures)
			}
			if run.capped {
				// Retry-After of a day: honoured up to an hour, not a day.
				next := run.failure.Status.NextRefreshTime.Time
				if d := next.Sub(times[0].Truncate(time.Second)); d < maxRetryAfter || d > maxRetryAfter+30*time.Second {
					t.Errorf("retry scheduled %s after the failing request, want the %s cap", d, maxRetryAfter)
				}
				return
			}
			for i := 1; i < len(times); i++ {
				want := max(minBackoff(i), run.retryAfter)
				if gap := times[i].Sub(times[i-1]); gap < want {
					t.Errorf("attempt %d came %s after attempt %d, want at least %s", i+1, gap.Round(time.Millisecond), i, want)
				}
			}
			if run.retryAfter > 0 {
				next := run.failure.Status.NextRefreshTime.Time
				if d := next.Sub(times[0].Truncate(time.Second)); d < run.retryAfter {
					t.Errorf("status.nextRefreshTime is %s after the failing request, want at least the Retry-After %s", d, run.retryAfter)
				}
			}
		})
	}
}

// TestReconcileRetriesFailedForcedRefresh: a forced refresh that fails while
// the old token is still valid is retried after the backoff, and Ready
// stays False until it succeeds (it used to be dropped: the next reconcile
// found the old token valid, set Ready=True and never logged in again).
func TestReconcileRetriesFailedForcedRefresh(t *testing.T) {
	u := newUnitEnv(t)
	u.reconcile(t)
	tr := u.tokenRequest(t)
	tr.Annotations = map[string]string{tokensyncv1alpha1.AnnotationForceRefresh: "now"}
	if err := u.r.Update(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	u.prov.err = providers.Errorf(providers.ProviderUnavailable, "AML Watcher is unavailable (HTTP 503)")
	if res := u.reconcile(t); res.RequeueAfter != 5*time.Second || u.prov.logins.Load() != 2 {
		t.Fatalf("forced refresh: %d logins, next after %s", u.prov.logins.Load(), res.RequeueAfter)
	}
	u.clock.Step(5 * time.Second)
	u.reconcile(t)
	if n := u.prov.logins.Load(); n != 3 {
		t.Fatalf("%d logins after the backoff, want 3: the failed forced refresh was not retried", n)
	}
	if c := readyCondition(u.tokenRequest(t)); c.Status != metav1.ConditionFalse || u.tokenRequest(t).Status.FailedAttempts != 2 {
		t.Fatalf("after two failures: Ready %s/%s, failedAttempts %d", c.Status, c.Reason, u.tokenRequest(t).Status.FailedAttempts)
	}
	u.prov.err = nil
	u.clock.Step(10 * time.Second)
	u.reconcile(t)
	if tr := u.tokenRequest(t); u.prov.logins.Load() != 4 || tr.Status.FailedAttempts != 0 || readyCondition(tr).Status != metav1.ConditionTrue {
		t.Fatalf("after healing: %d logins, failedAttempts %d", u.prov.logins.Load(), tr.Status.FailedAttempts)
	}
	// Healthy again: no login until the refresh is due.
	u.clock.Step(time.Minute)
	u.reconcile(t)
	if n := u.prov.logins.Load(); n != 4 {
		t.Fatalf("%d logins after recovery, want 4", n)
	}
}
