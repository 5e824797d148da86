package controllers

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/internal/endpointpolicy"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestOutageEndingBeforeExpiry: a provider outage (HTTP 503) that ends 4 s
// before the token expires leaves no expired token in the Secret: the last
// retry of the fast class starts at least a second before expiry, whatever the backoff.
func TestOutageEndingBeforeExpiry(t *testing.T) {
	t.Parallel()
	const lifetime = 30 * time.Second
	// Without the minimum login interval (10 s by default, tested in
	// TestDecide): with it, a refresh that fails 10 s before its token
	// expires has no second login before the expiry, whatever the backoff
	// (seen as a flaky failure whenever the refresh's jitter put it there).
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) { r.MinLoginInterval = -1 },
		providertest.WithLifetime(providertest.Partner, lifetime))
	e.fake.SetValid(providertest.Partner, partnerCreds)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("tr", providertest.Partner, "creds")
	e.waitReady("tr")
	// The outage starts now, before the refresh of the token the Secret
	// holds, and ends 4 s before that token expires.
	e.fake.FailEvery(providertest.Partner, 1, providertest.Failure{Status: 503})
	s, err := e.secret("tr")
	if err != nil {
		t.Fatal(err)
	}
	expiry, err := time.Parse(time.RFC3339, string(s.Data[tokensyncv1alpha1.SecretKeyExpiresAt]))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(time.Until(expiry.Add(-4 * time.Second)))
		e.fake.FailEvery(providertest.Partner, 0, providertest.Failure{})
	}()
	// Until well after the old expiry, the Secret never holds an expired token.
	deadline := expiry.Add(5 * time.Second)
	for time.Now().Before(deadline) {
		asked := time.Now()
		s, err := e.secret("tr")
		if err != nil {
			t.Fatal(err)
		}
		exp, err := time.Parse(time.RFC3339, string(s.Data[tokensyncv1alpha1.SecretKeyExpiresAt]))
		if err != nil {
			t.Fatal(err)
		}
		if !asked.Before(exp) {
			t.Fatalf("at %s the Secret held a token that expired at %s (failed attempts %d)", asked.Format(time.RFC3339Nano), exp, e.tokenRequest("tr").Status.FailedAttempts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if e.fake.Attempts(providertest.Partner) < 3 {
		t.Errorf("%d attempts: the outage was not crossed", e.fake.Attempts(providertest.Partner))
	}
}

func hasSubstrings(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

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
	d := policy.BackoffBase
	for i := 1; i < attempts && d < policy.BackoffCap; i++ {
		d *= 2
	}
	d = min(d, policy.BackoffCap)
	return d - time.Duration(float64(d)*policy.BackoffJitter)
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
		{name: "http-429-retry-after-beyond-cap", provider: providertest.Partner, failures: 1, retryAfter: policy.MaxRetryAfter, capped: true,
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
				if d := next.Sub(times[0].Truncate(time.Second)); d < policy.MaxRetryAfter || d > policy.MaxRetryAfter+30*time.Second {
					t.Errorf("retry scheduled %s after the failing request, want the %s cap", d, policy.MaxRetryAfter)
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
	u.clock.Step(DefaultMinLoginInterval) // the force comes after the minimum login interval
	tr := u.tokenRequest(t)
	tr.Annotations = map[string]string{tokensyncv1alpha1.AnnotationForceRefresh: "now"}
	if err := u.r.Update(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	u.prov.err = providers.Errorf(providers.ProviderUnavailable, "AML Watcher is unavailable (HTTP 503)")
	if res := u.reconcile(t); res.RequeueAfter != 5*time.Second || u.prov.logins.Load() != 2 {
		t.Fatalf("forced refresh: %d logins, next after %s", u.prov.logins.Load(), res.RequeueAfter)
	}
	u.clock.Step(5 * time.Second) // the backoff: the minimum login interval still holds it
	if u.reconcile(t); u.prov.logins.Load() != 2 {
		t.Fatalf("%d logins 5 s after the failed forced refresh, want 2: the minimum login interval did not hold", u.prov.logins.Load())
	}
	u.clock.Step(DefaultMinLoginInterval - 5*time.Second)
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

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(entries)
}

// TestNoLeaksAcrossFailingLogins: 200 logins through the operator's HTTP
// client (the one providers build, with DialControl) against the fakes of
// every built-in provider in turn (configured by their settings), with
// failures of every kind mixed in (5xx with Retry-After, connection resets,
// hangs past the timeout, malformed, huge, empty and redirecting answers).
// Afterwards, once the fake has closed its side of every connection the
// clients keep alive, goroutines and file descriptors return to where they
// were.
//
// Not parallel: counts are process-wide, and sequential tests run before
// the parallel ones start.
func TestNoLeaksAcrossFailingLogins(t *testing.T) {
	if testing.Short() {
		t.Skip("200 logins")
	}
	fake := providertest.Start(t)
	registry := builtin.NewRegistry(providers.Options{Timeout: 400 * time.Millisecond, DialControl: policyDialControl(&endpointpolicy.Policy{Rules: endpointpolicy.Rules{AllowLoopback: true}}, nil)})
	// Each provider's login, and the fake whose faults it meets (its own,
	// or the one it logs in to).
	type target struct {
		login    providers.Provider
		endpoint string
		creds    providers.Credentials
		fake     string
	}
	var targets []target
	for _, f := range providertest.Fakes() {
		tg := target{login: registry[f.Name].Provider, endpoint: f.Endpoint(fake.URL()), creds: providers.Credentials{}, fake: f.Name}
		if !f.Served() {
			tg.fake = f.Via
		}
		if c, ok := tg.login.(providers.Configurable); ok {
			var err error
			if tg.login, err = c.WithSettings([]byte(f.Settings)); err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
		}
		for k, v := range credsFor(f.Name) {
			tg.creds[k] = []byte(v)
		}
		targets = append(targets, tg)
	}
	runtime.GC()
	baseGoroutines, baseFDs := runtime.NumGoroutine(), openFDs(t)

	ctx := context.Background()
	kinds := map[providers.ErrorKind]int{}
	var ok, peakGoroutines int
	for i := range 200 {
		tg := targets[i%len(targets)]
		p := tg.fake
		hang := false
		switch i % 10 {
		case 3:
			fake.FailNextWith(p, 1, providertest.Failure{Status: http.StatusServiceUnavailable, RetryAfter: "1"})
		case 4:
			fake.FailNextWith(p, 1, providertest.Failure{Fault: providertest.ResetConnection})
		case 5:
			hang = true
			fake.Hang(p, true)
		case 6:
			fake.FailNextWith(p, 1, providertest.Failure{Fault: providertest.HugeBody})
		case 7:
			fake.FailNextWith(p, 1, providertest.Failure{Fault: providertest.NotJSON})
		case 8:
			fault := providertest.EmptyBody
			if i%20 == 8 {
				fault = providertest.Redirect
			}
			fake.FailNextWith(p, 1, providertest.Failure{Fault: fault})
		}
		_, err := tg.login.Login(ctx, tg.endpoint, tg.creds)
		if hang {
			fake.Hang(p, false)
		}
		if err != nil {
			kinds[providers.KindOf(err)]++
		} else {
			ok++
		}
		peakGoroutines = max(peakGoroutines, runtime.NumGoroutine())
	}
	// 6 in 10 fail: 503, reset and hang are transient, the rest invalid
	// answers, though on a loaded machine the short client timeout may cut
	// a slow invalid answer first (then it is transient too).
	if ok != 80 || kinds[providers.ProviderUnavailable]+kinds[providers.InvalidResponse] != 120 ||
		kinds[providers.ProviderUnavailable] < 60 {
		t.Fatalf("%d logins succeeded, failures by kind %v; want 80, and 120 ProviderUnavailable or InvalidResponse (at least 60 ProviderUnavailable)", ok, kinds)
	}

	// The providers' clients are out of reach, so their idle keep-alive
	// connections are closed from the fake's side: what then remains (the
	// fake's own listener is gone too) is a leak.
	fake.Close()
	var goroutines, fds int
	eventually(t, 30*time.Second, func() error {
		runtime.GC()
		goroutines, fds = runtime.NumGoroutine(), openFDs(t)
		if goroutines > baseGoroutines+3 || fds > baseFDs+2 {
			return fmt.Errorf("%d goroutines (baseline %d, peak %d) and %d file descriptors (baseline %d) after 200 logins",
				goroutines, baseGoroutines, peakGoroutines, fds, baseFDs)
		}
		return nil
	})
	t.Logf("goroutines: baseline %d, peak %d, after %d; file descriptors: baseline %d, after %d", baseGoroutines, peakGoroutines, goroutines, baseFDs, fds)
}

// The endpoint policy itself (which endpoints and addresses it refuses) is
// tested in internal/endpointpolicy. These tests check the reconciler's use
// of it: a refused endpoint ends Ready=False EndpointNotAllowed with a
// Warning event, and nothing is sent.

// refusal is one TokenRequest the endpoint policy must refuse.
type refusal struct {
	name, provider, endpoint string
	// message is part of the condition message.
	message string
	// dialed is the address the HTTP client tried (and DialControl
	// refused) when the refusal comes from the dialed address; "" when
	// nothing may be dialed at all.
	dialed string
}

// expectRefusals creates each TokenRequest and checks it ends Ready=False
// EndpointNotAllowed with a Warning event, and that nothing was dialed but
// the refused addresses and the fake (for the tests' positive controls).
func expectRefusals(t *testing.T, e *env, dials *dialLog, cases []refusal) {
	t.Helper()
	for _, c := range cases {
		if _, err := e.secret(c.provider + "-creds"); err != nil {
			e.createSecret(c.provider+"-creds", credsFor(c.provider))
		}
		e.createTokenRequest(c.name, c.provider, c.provider+"-creds", withEndpoint(c.endpoint))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.in(t)
			tr := e.waitCondition(c.name, metav1.ConditionFalse, tokensyncv1alpha1.ReasonEndpointNotAllowed)
			if msg := readyCondition(tr).Message; !strings.Contains(msg, c.message) {
				t.Errorf("message %q does not contain %q", msg, c.message)
			}
			e.waitEvent(c.name, "Warning/EndpointNotAllowed")
			if c.dialed != "" && !slices.Contains(dials.all(), c.dialed) {
				t.Errorf("DialControl never saw %s (dialed %v)", c.dialed, dials.all())
			}
		})
	}
	allowed := map[string]bool{}
	for _, c := range cases {
		allowed[c.dialed] = true
	}
	for _, a := range dials.all() {
		if !allowed[a] && a != e.fake.Addr() {
			t.Errorf("dialed %s: a refused endpoint was contacted", a)
		}
	}
}

// fakeAttempts counts the requests the env's fake saw, all providers together.
func fakeAttempts(e *env) int {
	return e.fake.Attempts(providertest.AML) + e.fake.Attempts(providertest.AmpliFi) + e.fake.Attempts(providertest.Partner)
}

// TestEndpointPolicyAllowlist: with --allowed-endpoints, an endpoint outside
// a provider's entries is refused before any request; one inside works.
func TestEndpointPolicyAllowlist(t *testing.T) {
	t.Parallel()
	dials := &dialLog{}
	e := newEnvWith(t, func(e *env, r *TokenRequestReconciler) {
		policy, err := endpointpolicy.Parse("aml="+e.fake.URL()+",partner=https://partner.example.com/v2", endpointpolicy.Rules{AllowLoopback: true})
		if err != nil {
			t.Fatal(err)
		}
		r.EndpointPolicy = policy
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second, DialControl: policyDialControl(policy, dials), CheckURL: policy.CheckURL})
	})

	e.createSecret("aml-creds", amlCreds)
	e.createTokenRequest("allowed", providertest.AML, "aml-creds")
	expectRefusals(t, e, dials, []refusal{
		{name: "not-listed", provider: providertest.Partner, endpoint: e.fake.URL(),
			message: `is not allowed for provider "partner" by the operator's --allowed-endpoints policy; allowed: https://partner.example.com/v2`},
		{name: "outside-path-prefix", provider: providertest.Partner, endpoint: "https://partner.example.com/v2ex",
			message: "allowed: https://partner.example.com/v2"},
		{name: "other-host", provider: providertest.Partner, endpoint: "https://evil.example.com/v2",
			message: "allowed: https://partner.example.com/v2"},
		{name: "other-port", provider: providertest.AML, endpoint: "http://127.0.0.1:1",
			message: "allowed: " + e.fake.URL()},
		{name: "dot-segments-out-of-prefix", provider: providertest.Partner, endpoint: "https://partner.example.com/v2/..%2f..%2fadmin",
			message: `"." and ".." segments`},
	})
	e.waitReady("allowed")
	if n := fakeAttempts(e); n != 1 {
		t.Errorf("the fake saw %d requests, want 1: the allowed endpoint's login only", n)
	}
}

// TestEndpointPolicySchemesAndAddresses: without an allowlist, plain http
// is refused except to loopback, and link-local and cloud metadata
// addresses are refused in every spelling, before any request. The client
// is the one providers build with DialControl, as main.go wires it.
func TestEndpointPolicySchemesAndAddresses(t *testing.T) {
	t.Parallel()
	dials := &dialLog{}
	policy, err := endpointpolicy.Parse("", endpointpolicy.Rules{AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.EndpointPolicy = policy
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second, DialControl: policyDialControl(policy, dials), CheckURL: policy.CheckURL})
	})
	e.createSecret("partner-creds", partnerCreds)
	e.createTokenRequest("loopback-http", providertest.Partner, "partner-creds")
	const metadata = "link-local and cloud metadata addresses are always refused"
	expectRefusals(t, e, dials, []refusal{
		{name: "plain-http", provider: providertest.Partner, endpoint: "http://partner.example.com",
			message: "plain http:// is only allowed to loopback hosts; use https://"},
		{name: "plain-http-name-resolving-to-loopback", provider: providertest.Partner, endpoint: "http://partner.tokensync.test:8080",
			message: "plain http:// is only allowed to loopback hosts"},
		{name: "metadata-ipv4", provider: providertest.AmpliFi, endpoint: "https://169.254.169.254", message: metadata},
		{name: "metadata-ipv4-http", provider: providertest.AmpliFi, endpoint: "http://169.254.169.254/latest", message: metadata},
		{name: "link-local", provider: providertest.AML, endpoint: "https://169.254.10.10:8443", message: metadata},
		{name: "metadata-ipv6", provider: providertest.AmpliFi, endpoint: "https://[fd00:ec2::254]", message: metadata},
		{name: "metadata-ipv4-mapped", provider: providertest.Partner, endpoint: "https://[::ffff:169.254.169.254]", message: metadata},
		{name: "metadata-nat64", provider: providertest.Partner, endpoint: "https://[64:ff9b::a9fe:a9fe]", message: metadata},
		{name: "metadata-alibaba", provider: providertest.Partner, endpoint: "https://100.100.100.200", message: metadata},
		{name: "link-local-ipv6", provider: providertest.Partner, endpoint: "https://[fe80::1]", message: metadata},
		{name: "ipv6-zone", provider: providertest.Partner, endpoint: "https://[fe80::1%25eth0]", message: "IPv6 zones are not allowed"},
		{name: "hex-ipv4", provider: providertest.Partner, endpoint: "http://0xa9.0xfe.0xa9.0xfe", message: "non-standard form"},
		{name: "decimal-ipv4", provider: providertest.Partner, endpoint: "http://2852039166", message: "non-standard form"},
	})
	e.waitReady("loopback-http")
	if n := fakeAttempts(e); n != 1 {
		t.Errorf("the fake saw %d requests, want 1: the loopback endpoint's login only", n)
	}
}

// TestEndpointPolicyChecksTheDialedAddress: a DNS name that resolves to a
// link-local or metadata address is refused when dialing, in IPv4, IPv6 and
// IPv4-mapped form; --allow-insecure-http allows plain http to a
// non-loopback name but never to a metadata address. Names are answered by
// an in-process DNS server: no query leaves the machine.
func TestEndpointPolicyChecksTheDialedAddress(t *testing.T) {
	t.Parallel()
	dns := startFakeDNS(t, map[string][]netip.Addr{
		"partner.tokensync.test":  {netip.MustParseAddr("127.0.0.1")},
		"metadata.tokensync.test": {netip.MustParseAddr("169.254.169.254")},
		"aws6.tokensync.test":     {netip.MustParseAddr("fd00:ec2::254")},
		"mapped.tokensync.test":   {netip.MustParseAddr("::ffff:169.254.169.254")},
		"169.254.169.254.nip.io":  {netip.MustParseAddr("169.254.169.254")},
	})
	dials := &dialLog{}
	policy, err := endpointpolicy.Parse("", endpointpolicy.Rules{AllowInsecureHTTP: true, AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.EndpointPolicy = policy
		r.Providers = builtin.NewRegistry(providers.Options{HTTPClient: resolvingClient(5*time.Second, dns.resolver(), policyDialControl(policy, dials))})
	})
	port := strings.TrimPrefix(e.fake.URL(), "http://127.0.0.1:")
	e.createSecret("partner-creds", partnerCreds)
	e.createTokenRequest("insecure-http-by-name", providertest.Partner, "partner-creds", withEndpoint("http://partner.tokensync.test:"+port))
	const dialRefused = "refused by the operator's endpoint policy: link-local and cloud metadata addresses are always refused"
	cases := []refusal{
		{name: "name-to-metadata", provider: providertest.Partner, endpoint: "https://metadata.tokensync.test",
			message: "connection to 169.254.169.254:443 " + dialRefused, dialed: "169.254.169.254:443"},
		{name: "name-to-metadata-http", provider: providertest.Partner, endpoint: "http://metadata.tokensync.test:" + port,
			message: "connection to 169.254.169.254:" + port + " " + dialRefused, dialed: "169.254.169.254:" + port},
		{name: "nip-io-style-name", provider: providertest.AML, endpoint: "https://169.254.169.254.nip.io",
			message: "connection to 169.254.169.254:443 " + dialRefused, dialed: "169.254.169.254:443"},
		{name: "name-to-ipv4-mapped", provider: providertest.Partner, endpoint: "https://mapped.tokensync.test",
			message: dialRefused, dialed: "169.254.169.254:443"},
		{name: "insecure-http-to-metadata-literal", provider: providertest.Partner, endpoint: "http://169.254.169.254",
			message: "link-local and cloud metadata addresses are always refused"},
	}
	if haveIPv6() {
		cases = append(cases, refusal{name: "name-to-aws-ipv6", provider: providertest.AmpliFi, endpoint: "https://aws6.tokensync.test",
			message: "connection to [fd00:ec2::254]:443 " + dialRefused, dialed: "[fd00:ec2::254]:443"})
	}
	expectRefusals(t, e, dials, cases)
	// The name that resolves to loopback works over plain http: the
	// refusals above came from the addresses, not from DNS failing.
	e.waitReady("insecure-http-by-name")
	if n := fakeAttempts(e); n != 1 {
		t.Errorf("the fake saw %d requests, want 1: the login by name", n)
	}
	if dns.queries.Load() == 0 {
		t.Error("the fake DNS server was never asked")
	}
}

// resolvingClient is an HTTP client like the one providers build (one
// total timeout, no redirects, no proxy) whose dialer runs DialControl
// after resolving names with resolver. providers.Options has no resolver
// hook, so a test that controls DNS builds its own client.
func resolvingClient(timeout time.Duration, resolver *net.Resolver, control func(string, string, syscall.RawConn) error) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Resolver: resolver, Control: control}
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			DialContext:           dialer.DialContext,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   4,
		},
	}
}

// fakeDNS is an in-process DNS server on loopback UDP answering A and AAAA
// queries from a fixed table, and NXDOMAIN for every other name: a resolver
// pointed at it never asks the network.
type fakeDNS struct {
	conn    net.PacketConn
	records map[string][]netip.Addr // lowercase name without the trailing dot
	queries atomic.Int32
}

func startFakeDNS(t *testing.T, records map[string][]netip.Addr) *fakeDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake DNS: %v", err)
	}
	d := &fakeDNS{conn: conn, records: records}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			d.queries.Add(1)
			if reply := d.answer(buf[:n]); reply != nil {
				_, _ = conn.WriteTo(reply, from)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return d
}

// resolver returns a pure-Go resolver that sends every query to d.
func (d *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "udp", d.conn.LocalAddr().String())
		},
	}
}

// answer builds the reply to one query: the question echoed, then the A
// (type 1) or AAAA (type 28) records of the name.
func (d *fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		n := int(q[i])
		i++
		if n == 0 {
			break
		}
		if n > 63 || i+n > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+n]))
		i += n
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i : i+2])
	question := q[12 : i+4]

	addrs, known := d.records[strings.ToLower(strings.Join(labels, "."))]
	var answers [][]byte
	for _, a := range addrs {
		if (qtype == 1 && a.Is4()) || (qtype == 28 && a.Is6()) {
			answers = append(answers, a.AsSlice())
		}
	}
	reply := make([]byte, 12, 512)
	copy(reply[0:2], q[0:2])                                     // ID
	flags := uint16(0x8000|0x0400|0x0080) | uint16(q[2]&0x01)<<8 // QR, AA, RA, RD copied
	if !known {
		flags |= 3 // NXDOMAIN
	}
	binary.BigEndian.PutUint16(reply[2:4], flags)
	binary.BigEndian.PutUint16(reply[4:6], 1)
	binary.BigEndian.PutUint16(reply[6:8], uint16(len(answers)))
	reply = append(reply, question...)
	for _, rdata := range answers {
		rr := []byte{0xc0, 12} // the name: a pointer to the question's
		rr = binary.BigEndian.AppendUint16(rr, qtype)
		rr = binary.BigEndian.AppendUint16(rr, 1) // class IN
		rr = binary.BigEndian.AppendUint32(rr, 5) // TTL
		rr = binary.BigEndian.AppendUint16(rr, uint16(len(rdata)))
		reply = append(reply, append(rr, rdata...)...)
	}
	return reply
}

// TestEndpointPolicyJudgesTheLoginURL: the policy judges the URL a login is
// sent to, spec.endpoint with the login path joined, and spec.http.path
// cannot lead out of an allowlisted prefix: "../" is refused at admission,
// a spelling the API server does not decode at the first login, with
// nothing sent either way.
func TestEndpointPolicyJudgesTheLoginURL(t *testing.T) {
	t.Parallel()
	dials := &dialLog{}
	var policy *endpointpolicy.Policy
	e := newEnvWith(t, func(e *env, r *TokenRequestReconciler) {
		var err error
		policy, err = endpointpolicy.Parse("http="+e.fake.URL()+providertest.AMLPath, endpointpolicy.Rules{AllowLoopback: true})
		if err != nil {
			t.Fatal(err)
		}
		r.EndpointPolicy = policy
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second, DialControl: policyDialControl(policy, dials), CheckURL: policy.CheckURL})
	})
	e.createSecret("http-creds", credsFor("http"))
	withPath := func(endpoint, path string) func(*tokensyncv1alpha1.TokenRequest) {
		return func(tr *tokensyncv1alpha1.TokenRequest) {
			tr.Spec.Endpoint = endpoint
			tr.Spec.HTTP = amlAsHTTP()
			tr.Spec.HTTP.Path = path
		}
	}

	// The endpoint alone is outside the entry; endpoint and path are in it.
	e.createTokenRequest("login-url-allowed", "http", "http-creds", withPath(e.fake.URL(), providertest.AMLPath))
	// Endpoint and path outside it: refused, the message quoting the URL judged.
	e.createTokenRequest("login-url-outside", "http", "http-creds", withPath(e.fake.URL()+"/api", "/admin/keys"))
	// Inside the entry, with a path that leaves it for a server that
	// decodes twice: admitted (CEL decodes nothing), refused at the first
	// login, before anything is sent.
	e.createTokenRequest("double-encoded-escape", "http", "http-creds",
		withPath(e.fake.URL()+providertest.AMLPath+"/tenant-a", "%252e%252e/%252e%252e/admin/keys"))

	// The plain escape never gets in.
	for _, path := range []string{"../admin/keys", "/%2e%2e/admin/keys", "/..;/admin/keys"} {
		tr := &tokensyncv1alpha1.TokenRequest{
			ObjectMeta: metav1.ObjectMeta{Name: "escape", Namespace: e.ns},
			Spec: tokensyncv1alpha1.TokenRequestSpec{
				LoginSpec: tokensyncv1alpha1.LoginSpec{
					Provider: "http",
				},
				CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "http-creds"},
			},
		}
		withPath(e.fake.URL()+providertest.AMLPath, path)(tr)
		err := k8sClient.Create(e.ctx(), tr)
		if err == nil || !strings.Contains(err.Error(), "spec.http.path must not contain '.' or '..' segments") {
			t.Errorf("path %q: create = %v, want a rejection naming spec.http.path", path, err)
		}
	}

	e.waitReady("login-url-allowed")

	tr := e.waitCondition("login-url-outside", metav1.ConditionFalse, tokensyncv1alpha1.ReasonEndpointNotAllowed)
	if msg, want := readyCondition(tr).Message, fmt.Sprintf("endpoint %q is not allowed for provider \"http\" by the operator's --allowed-endpoints policy; allowed: %s",
		e.fake.URL()+"/api/admin/keys", e.fake.URL()+providertest.AMLPath); !strings.Contains(msg, want) {
		t.Errorf("message %q does not contain %q", msg, want)
	}
	e.waitEvent("login-url-outside", "Warning/EndpointNotAllowed")

	tr = e.waitCondition("double-encoded-escape", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidTemplate)
	stalled := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled)
	if stalled == nil || stalled.Status != metav1.ConditionTrue || !strings.Contains(stalled.Message, `spec.http.path is refused: "." and ".." segments`) {
		t.Errorf("Stalled = %+v, want True naming spec.http.path", stalled)
	}
	if tr.Status.NextRefreshTime != nil {
		t.Errorf("next retry at %v: a path that cannot be used waits for a change", tr.Status.NextRefreshTime)
	}

	if n := e.fake.Attempts(providertest.AML); n != 1 {
		t.Errorf("the fake saw %d logins, want 1: the allowed login only", n)
	}
	for _, a := range dials.all() {
		if a != e.fake.Addr() {
			t.Errorf("dialed %s", a)
		}
	}
}

// TestEndpointPolicyLoopback: without --allow-loopback-endpoints no
// TokenRequest reaches the operator's own host: a loopback endpoint in any
// spelling is refused before anything is dialed, a name resolving to
// loopback is refused at the dial, and the fake on loopback sees no
// request. Restarted with the flag, the same endpoints work.
func TestEndpointPolicyLoopback(t *testing.T) {
	t.Parallel()
	dns := startFakeDNS(t, map[string][]netip.Addr{"sidecar.tokensync.test": {netip.MustParseAddr("127.0.0.1")}})
	dials := &dialLog{}
	allowLoopback := false
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		// Insecure HTTP allowed, so that the name resolving to loopback
		// gets as far as the dial.
		policy, err := endpointpolicy.Parse("", endpointpolicy.Rules{AllowInsecureHTTP: true, AllowLoopback: allowLoopback})
		if err != nil {
			t.Fatal(err)
		}
		r.EndpointPolicy = policy
		client := resolvingClient(5*time.Second, dns.resolver(), policyDialControl(policy, dials))
		r.Providers = builtin.NewRegistry(providers.Options{HTTPClient: client, CheckURL: policy.CheckURL})
	})
	_, port, _ := net.SplitHostPort(e.fake.Addr())
	const refused = "the operator refuses loopback endpoints (it was started without --allow-loopback-endpoints)"
	loopbackCases := []refusal{
		{name: "ipv4", provider: providertest.AML, endpoint: e.fake.URL(), message: refused},
		{name: "ipv4-https", provider: providertest.Partner, endpoint: "https://127.0.0.1:" + port, message: refused},
		{name: "localhost", provider: providertest.AmpliFi, endpoint: "http://localhost:" + port, message: refused},
		{name: "localhost-subdomain", provider: providertest.Partner, endpoint: "https://admin.localhost:" + port, message: refused},
		{name: "sidecar-admin-port", provider: providertest.Partner, endpoint: "http://127.0.0.1:15000/quitquitquit", message: refused},
		{name: "ipv6", provider: providertest.AML, endpoint: "http://[::1]:" + port, message: refused},
		{name: "ipv4-mapped", provider: providertest.AML, endpoint: "http://[::ffff:127.0.0.1]:" + port, message: refused},
		{name: "unspecified", provider: providertest.AML, endpoint: "http://0.0.0.0:" + port, message: refused},
		{name: "unspecified-ipv6", provider: providertest.Partner, endpoint: "http://[::]:" + port, message: refused},
		{name: "name-to-loopback", provider: providertest.Partner, endpoint: "http://sidecar.tokensync.test:" + port,
			message: "connection to 127.0.0.1:" + port + " refused by the operator's endpoint policy: " + refused, dialed: "127.0.0.1:" + port},
	}
	expectRefusals(t, e, dials, loopbackCases)
	if n := fakeAttempts(e); n != 0 {
		t.Errorf("the fake on loopback saw %d requests, want none", n)
	}
	if dns.queries.Load() == 0 {
		t.Error("the fake DNS server was never asked")
	}

	// With --allow-loopback-endpoints the same endpoints log in.
	allowLoopback = true
	e.restart()
	for _, name := range []string{"ipv4-allowed", "localhost-allowed", "name-to-loopback-allowed"} {
		endpoint := map[string]string{
			"ipv4-allowed":             e.fake.URL(),
			"localhost-allowed":        "http://localhost:" + port,
			"name-to-loopback-allowed": "http://sidecar.tokensync.test:" + port,
		}[name]
		e.createTokenRequest(name, providertest.Partner, providertest.Partner+"-creds", withEndpoint(endpoint))
	}
	for _, name := range []string{"ipv4-allowed", "localhost-allowed", "name-to-loopback-allowed"} {
		e.waitReady(name)
	}
}

// TestHostileEndpointsRefusedBeforeAnyRequest: endpoints the CRD admits but
// no provider lives at (unicode hosts, IPv6 zones, out-of-range ports,
// dot segments, backslashes, numeric hosts) are refused by the operator's
// endpoint policy, with nothing dialed. A case the CRD starts rejecting
// needs no policy check and is skipped.
func TestHostileEndpointsRefusedBeforeAnyRequest(t *testing.T) {
	t.Parallel()
	const dnsName = "is not a valid DNS name or IP address"
	cases := []refusal{
		{name: "ipv6-zone", provider: providertest.Partner, endpoint: "https://[fe80::1%25eth0]/", message: "IPv6 zones are not allowed"},
		{name: "zero-width-space", provider: providertest.Partner, endpoint: "https://partner\u200b.example.com", message: dnsName},
		{name: "cyrillic-homograph", provider: providertest.Partner, endpoint: "https://\u0440artner.example.com", message: dnsName},
		{name: "emoji-host", provider: providertest.AmpliFi, endpoint: "https://\U0001F600.example.com", message: dnsName},
		{name: "no-break-space", provider: providertest.AmpliFi, endpoint: "https://partner.example.com\u00a0", message: dnsName},
		{name: "port-out-of-range", provider: providertest.AML, endpoint: "https://aml.example.com:99999", message: `port "99999" is out of range`},
		{name: "encoded-dot-segments", provider: providertest.AML, endpoint: "https://aml.example.com/v1/..%2f..%2finternal", message: `"." and ".." segments`},
		{name: "backslash-path", provider: providertest.AML, endpoint: `https://aml.example.com/v1\..\internal`, message: "backslashes are not allowed"},
		{name: "octal-ipv4", provider: providertest.Partner, endpoint: "http://0251.0376.0251.0376", message: "non-standard form"},
		{name: "short-ipv4", provider: providertest.Partner, endpoint: "http://127.1", message: "non-standard form"},
	}
	var admitted []refusal
	for _, c := range cases {
		obj := &tokensyncv1alpha1.TokenRequest{
			ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: "default"},
			Spec: tokensyncv1alpha1.TokenRequestSpec{
				LoginSpec: tokensyncv1alpha1.LoginSpec{
					Provider: tokensyncv1alpha1.Provider(c.provider),
					Endpoint: c.endpoint,
				},
				CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "creds"},
			},
		}
		if err := k8sClient.Create(context.Background(), obj, client.DryRunAll); err != nil {
			t.Logf("%s: the CRD now rejects %q: %v", c.name, c.endpoint, err)
			continue
		}
		admitted = append(admitted, c)
	}
	dials := &dialLog{}
	policy, err := endpointpolicy.Parse("", endpointpolicy.Rules{AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.EndpointPolicy = policy
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second, DialControl: policyDialControl(policy, dials)})
	})
	expectRefusals(t, e, dials, admitted)
	if d := dials.all(); len(d) != 0 {
		t.Errorf("dialed %v", d)
	}
}

// TestManagerStoppedMidRefresh: the manager stops while a refresh is in
// flight (the provider holds the request). The Secret keeps its token
// throughout, the aborted attempt is not recorded as a failure, and the new
// manager logs in exactly once: the only extra request is the one that was
// in flight.
func TestManagerStoppedMidRefresh(t *testing.T) {
	t.Parallel()
	// A client timeout far beyond the test: only the stop can end the request.
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Minute})
	})
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("inflight", providertest.Partner, "creds")
	e.waitReady("inflight")
	first := e.token("inflight")
	watch := watchSecret(e, "inflight")

	e.fake.Hang(providertest.Partner, true)
	e.forceRefresh("inflight", "during-stop")
	eventually(t, readyTimeout, func() error {
		if n := e.fake.Attempts(providertest.Partner); n != 2 {
			return fmt.Errorf("%d requests, want the refresh in flight", n)
		}
		return nil
	})
	e.stop()
	if tr := e.tokenRequest("inflight"); tr.Status.FailedAttempts != 0 || tr.Status.LastForceRefresh == "during-stop" {
		t.Errorf("the aborted refresh was recorded: failedAttempts %d, lastForceRefresh %q", tr.Status.FailedAttempts, tr.Status.LastForceRefresh)
	}
	e.fake.Hang(providertest.Partner, false)

	e.start()
	eventually(t, readyTimeout, func() error {
		tr := e.tokenRequest("inflight")
		if tr.Status.LastForceRefresh != "during-stop" || e.token("inflight") == first {
			return fmt.Errorf("the refresh was not redone: lastForceRefresh %q", tr.Status.LastForceRefresh)
		}
		return nil
	})
	e.waitReady("inflight")
	consistently(t, 2*time.Second, func() error {
		if a, l := e.fake.Attempts(providertest.Partner), e.fake.Logins(providertest.Partner); a != 3 || l != 2 {
			return fmt.Errorf("%d requests and %d logins, want 3 (first, in flight, redone) and 2", a, l)
		}
		return nil
	})
	if lost, tokens := watch.finish(); lost || tokens != 2 {
		t.Errorf("the Secret was without a token at some point: %v; it held %d tokens, want 2", lost, tokens)
	}
}

// refusingProvider fails every login with err.
type refusingProvider struct{ err error }

func (p refusingProvider) Login(context.Context, string, providers.Credentials) (*providers.Token, error) {
	return nil, p.err
}

// TestLoginFailureDetailOnlyInLog: what a provider error's Detail says (a
// connection refused, as opposed to reset or timed out) reaches the
// operator's log, and not the failure that becomes the status and event.
func TestLoginFailureDetailOnlyInLog(t *testing.T) {
	var logged []string
	ctx := logf.IntoContext(context.Background(), funcr.New(func(_, args string) { logged = append(logged, args) }, funcr.Options{}))
	pe := providers.Errorf(providers.ProviderUnavailable, "could not reach Test at h.example:443: the connection failed")
	pe.Detail = "connection refused"
	a := &loginAttempt{
		key:      types.NamespacedName{Namespace: "team-a", Name: "api"},
		provider: refusingProvider{err: pe},
		creds:    providers.Credentials{},
		keys:     providers.Registration{},
		is:       policy.Issued{Provider: "test", Endpoint: "https://h.example"},
	}
	r := &TokenRequestReconciler{fingerprints: staticFingerprinter([]byte("detail-test-fingerprint-key-32-b"))}
	_, failed, end, err := r.logIn(ctx, a)
	if err != nil || failed == nil {
		t.Fatalf("logIn = %v, %v; want a failed login", failed, err)
	}
	if failed.Message != pe.Message || strings.Contains(failed.Message, pe.Detail) {
		t.Errorf("failure message %q, want %q without the detail", failed.Message, pe.Message)
	}
	if end.outcome != hostUnclear {
		t.Errorf("the login's end says %d of the host, want unclear (not Unavailable, no status)", end.outcome)
	}
	if all := strings.Join(logged, "\n"); !strings.Contains(all, `"detail"="connection refused"`) || !strings.Contains(all, `"reason"="ProviderUnavailable"`) {
		t.Errorf("the log %q does not carry the detail", all)
	}

	// No Detail, no line.
	logged = nil
	a.provider = refusingProvider{err: providers.Errorf(providers.AuthenticationFailed, "rejected")}
	if _, _, _, err := r.logIn(ctx, a); err != nil {
		t.Fatal(err)
	}
	if len(logged) != 0 {
		t.Errorf("logged %q for an error without Detail", logged)
	}
}
