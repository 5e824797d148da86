package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// A fleet of TokenRequests reconciled with the fake client and a fake
// clock, as tokenrequest_controller_unit_test.go drives one: the
// reconciler, its login gate (default limits: 10 logins a second per
// host, a burst of 5, 4 in flight) and the hosts' health, with a queue
// that gives each TokenRequest the reconciles the controller's would (its
// requeues, and its login's end). Minutes of outages run in a second.

// fleetProvider answers logins at the fake clock's time.
type fleetProvider struct {
	clock    *clocktesting.FakeClock
	lifetime time.Duration
	// answer says how a login of the credentials id fails at now (nil: a
	// token).
	answer func(now time.Time, id string) error
	// down, when set, says whether the host is down as a login starts:
	// the login is then its probe.
	down func() bool

	mu       sync.Mutex
	attempts []fleetAttempt
}

type fleetAttempt struct {
	at    time.Time
	id    string
	ok    bool
	probe bool
}

func (p *fleetProvider) Login(_ context.Context, _ string, creds providers.Credentials) (*providers.Token, error) {
	now, id := p.clock.Now(), string(creds["email"])
	var err error
	if p.answer != nil {
		err = p.answer(now, id)
	}
	probe := p.down != nil && p.down()
	p.mu.Lock()
	p.attempts = append(p.attempts, fleetAttempt{at: now, id: id, ok: err == nil, probe: probe})
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &providers.Token{Value: "tok-" + id + "-" + now.Format(time.RFC3339Nano), ObtainedAt: now, ExpiresAt: now.Add(p.lifetime)}, nil
}

// within counts the attempts in [from, to), of ids for which match is
// true (nil: all); ok counts the successes among them.
func (p *fleetProvider) within(from, to time.Time, match func(id string) bool) (attempts, ok int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.attempts {
		if !a.at.Before(from) && a.at.Before(to) && (match == nil || match(a.id)) {
			attempts++
			if a.ok {
				ok++
			}
		}
	}
	return attempts, ok
}

// firstSuccess is the first successful login at or after from.
func (p *fleetProvider) firstSuccess(from time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.attempts {
		if a.ok && !a.at.Before(from) {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// Errors as the providers' client classifies them.
var (
	unavailable503 = &providers.Error{Kind: providers.ProviderUnavailable, Message: "AML Watcher is unavailable (HTTP 503)", Status: 503, Unavailable: true}
	timedOut       = &providers.Error{Kind: providers.ProviderUnavailable, Message: "could not reach AML Watcher: no answer", Unavailable: true}
	status500      = &providers.Error{Kind: providers.ProviderUnavailable, Message: "AML Watcher is unavailable (HTTP 500)", Status: 500}
	status429      = &providers.Error{Kind: providers.ProviderUnavailable, Message: "AML Watcher is limiting the rate of requests (HTTP 429)", Status: 429}
)

type fleet struct {
	t     *testing.T
	r     *TokenRequestReconciler
	clock *clocktesting.FakeClock
	cl    ctrl.Client
	prov  *fleetProvider
	// due is the queue: when each TokenRequest is next reconciled.
	due map[types.NamespacedName]time.Time
	// runs are the logins the gate started, run by the loop.
	runs []func()
	trs  []types.NamespacedName
}

// fleetMember is a TokenRequest of the fleet: its credentials' id (the
// same id: the same credentials) and its endpoint ("": the provider's
// default, https://aml.example).
type fleetMember struct {
	key      types.NamespacedName
	id       string
	endpoint string
}

// members are n TokenRequests in each of namespaces, each with credentials
// of its own.
func members(namespaces []string, n int) []fleetMember {
	var out []fleetMember
	for _, ns := range namespaces {
		for i := range n {
			key := types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("tr-%d", i)}
			out = append(out, fleetMember{key: key, id: key.String()})
		}
	}
	return out
}

func newFleet(t *testing.T, lifetime time.Duration) *fleet {
	t.Helper()
	f := &fleet{t: t, clock: clocktesting.NewFakeClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)), due: map[types.NamespacedName]time.Time{}}
	f.prov = &fleetProvider{clock: f.clock, lifetime: lifetime}
	f.cl = fake.NewClientBuilder().WithScheme(testScheme).WithStatusSubresource(&tokensyncv1alpha1.TokenRequest{}).Build()
	f.r = &TokenRequestReconciler{
		Client: f.cl, APIReader: f.cl, Credentials: f.cl, Scheme: testScheme,
		Recorder: &events.FakeRecorder{},
		Providers: providers.Registry{"aml": {Registration: providers.Registration{
			Name: "aml", DefaultEndpoint: "https://aml.example",
			CredentialKeys: []providers.CredentialKey{{Name: "email"}, {Name: "password"}},
		}, Provider: f.prov}},
		Clock:        f.clock,
		Jitter:       func() float64 { return 0 },
		fingerprints: staticFingerprinter([]byte("fleet-test-fingerprint-key-32-by")),
	}
	f.r.gate = newLoginGate(LoginLimits{}, f.clock)
	f.r.gate.jitter = func() float64 { return 0 }
	f.r.gate.goFunc = func(_ types.NamespacedName, run func()) { f.runs = append(f.runs, run) }
	f.r.gate.start(context.Background(), "", func(who types.NamespacedName) { f.enqueue(who, f.clock.Now()) })
	return f
}

// add creates the members' TokenRequests and credentials, to be reconciled now.
func (f *fleet) add(ms []fleetMember) {
	f.t.Helper()
	ctx := context.Background()
	for _, m := range ms {
		secret := "creds-" + m.key.Name
		creds := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: m.key.Namespace, Labels: credentialsLabels()},
			Data:       map[string][]byte{"email": []byte(m.id), "password": []byte("pw")},
		}
		tr := &tokensyncv1alpha1.TokenRequest{
			ObjectMeta: metav1.ObjectMeta{Name: m.key.Name, Namespace: m.key.Namespace, UID: types.UID("uid-" + m.key.String()), Generation: 1},
			Spec: tokensyncv1alpha1.TokenRequestSpec{
				LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: "aml", Endpoint: m.endpoint},
				CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: secret},
			},
		}
		for _, o := range []ctrl.Object{creds, tr} {
			if err := f.cl.Create(ctx, o); err != nil {
				f.t.Fatal(err)
			}
		}
		f.trs = append(f.trs, m.key)
		f.enqueue(m.key, f.clock.Now())
	}
}

// enqueue asks for a reconcile of key at at; the earlier of two asks wins,
// as the controller's delaying queue has it.
func (f *fleet) enqueue(key types.NamespacedName, at time.Time) {
	if cur, ok := f.due[key]; !ok || at.Before(cur) {
		f.due[key] = at
	}
}

// settle runs the logins started and the reconciles due until none is left.
func (f *fleet) settle() {
	f.t.Helper()
	for i := 0; ; i++ {
		if i > 1_000_000 {
			f.t.Fatal("the fleet never settles")
		}
		if len(f.runs) > 0 {
			run := f.runs[0]
			f.runs = f.runs[1:]
			run()
			continue
		}
		now := f.clock.Now()
		var next types.NamespacedName
		found := false
		for key, at := range f.due {
			if at.After(now) {
				continue
			}
			if !found || at.Before(f.due[next]) || at.Equal(f.due[next]) && key.String() < next.String() {
				next, found = key, true
			}
		}
		if !found {
			return
		}
		delete(f.due, next)
		res, err := f.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: next})
		if err != nil {
			f.t.Fatalf("reconcile %s: %v", next, err)
		}
		if res.RequeueAfter > 0 {
			f.enqueue(next, now.Add(res.RequeueAfter))
		}
	}
}

// step is the fleet's tick: the rate limiter's tokens come every 100 ms.
const fleetStep = 50 * time.Millisecond

// runUntil runs the fleet until end, calling each (if set) at every tick.
func (f *fleet) runUntil(end time.Time, each func()) {
	f.t.Helper()
	for {
		f.settle()
		if each != nil {
			each()
		}
		if !f.clock.Now().Before(end) {
			return
		}
		f.clock.Step(fleetStep)
	}
}

// held is what key's target Secret holds (ok false: no token).
func (f *fleet) held(key types.NamespacedName) (policy.HeldToken, bool) {
	s := &corev1.Secret{}
	if err := f.cl.Get(context.Background(), key, s); err != nil {
		return policy.HeldToken{}, false
	}
	return heldTokenIn(s, "")
}

// notValid lists the TokenRequests whose Secret does not hold a token
// valid now, obtained at or after since.
func (f *fleet) notValid(keys []types.NamespacedName, since time.Time) []string {
	now := f.clock.Now()
	var bad []string
	for _, key := range keys {
		h, ok := f.held(key)
		if !ok || !now.Before(h.ExpiresAt) || h.ObtainedAt.Before(since.Truncate(time.Second)) {
			bad = append(bad, key.String())
		}
	}
	sort.Strings(bad)
	return bad
}

func (f *fleet) tokenRequest(key types.NamespacedName) *tokensyncv1alpha1.TokenRequest {
	f.t.Helper()
	tr := &tokensyncv1alpha1.TokenRequest{}
	if err := f.cl.Get(context.Background(), key, tr); err != nil {
		f.t.Fatal(err)
	}
	return tr
}

// TestOutageOfAHost: 100 TokenRequests of 60 s tokens on one host, the
// provider answering 503 to every login for 60 s. During the outage at
// most 12 logins are attempted (not one per TokenRequest and backoff
// step); the waiting TokenRequests say so, naming the host and its next
// probe; the probe that finds the provider back releases all 100, which
// hold new tokens within 100 / rate + 2 s, one login each.
func TestOutageOfAHost(t *testing.T) {
	f := newFleet(t, 60*time.Second)
	t0 := f.clock.Now()
	f.add(members([]string{"ns-a", "ns-b", "ns-c", "ns-d"}, 25))
	f.runUntil(t0.Add(30*time.Second), nil)
	if bad := f.notValid(f.trs, t0); len(bad) != 0 {
		t.Fatalf("%d TokenRequests without a token before the outage: %v", len(bad), bad)
	}

	// Every token comes due, and expires, during the outage.
	start, end := f.clock.Now(), f.clock.Now().Add(time.Minute)
	f.prov.answer = func(now time.Time, _ string) error {
		if !now.Before(start) && now.Before(end) {
			return unavailable503
		}
		return nil
	}
	var sawWaiting bool
	f.runUntil(end.Add(-fleetStep), func() {
		if sawWaiting || !f.r.gate.isDown("aml.example") {
			return
		}
		for _, key := range f.trs {
			if in, _ := f.r.gate.inFlight(key); !in.waitsOnHost {
				continue
			}
			c := meta.FindStatusCondition(f.tokenRequest(key).Status.Conditions, tokensyncv1alpha1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tokensyncv1alpha1.ReasonProviderUnavailable ||
				!strings.Contains(c.Message, "provider host aml.example is down") || !strings.Contains(c.Message, "the next probe is at ") {
				t.Errorf("%s waits on the host with Ready %+v", key, c)
			}
			sawWaiting = true
			return
		}
	})
	if !sawWaiting {
		t.Error("no TokenRequest was seen waiting on the host")
	}
	attempts, _ := f.prov.within(start, end, nil)
	t.Logf("%d attempts during the 60 s outage", attempts)
	if attempts > 12 {
		t.Errorf("%d login attempts during the 60 s outage, want at most 12", attempts)
	}

	// After it: the first login that succeeds is a probe; it releases all.
	allValid := f.runUntilTrue(end.Add(10*time.Minute), func() bool { return len(f.notValid(f.trs, end)) == 0 })
	probe, ok := f.prov.firstSuccess(end)
	if !ok || allValid.IsZero() {
		t.Fatalf("not every Secret held a new token 10 minutes after the outage: %v", f.notValid(f.trs, end))
	}
	limit := 100/time.Duration(DefaultLoginLimits.PerEndpointRate)*time.Second + 2*time.Second
	t.Logf("the first probe after the outage came %s after it; all 100 held a new token %s after that probe",
		probe.Sub(end), allValid.Sub(probe))
	if took := allValid.Sub(probe); took > limit {
		t.Errorf("every Secret held a new token %s after the probe found the provider back, want within %s", took, limit)
	}
	if attempts, logins := f.prov.within(end, f.clock.Now().Add(time.Nanosecond), nil); logins != 100 || attempts != 100 {
		t.Errorf("%d attempts, %d logins since the outage, want 100 logins, one per TokenRequest", attempts, logins)
	}
	if f.r.gate.isDown("aml.example") {
		t.Error("the host is still down")
	}
}

// runUntilTrue runs the fleet until cond holds (checked at every tick),
// and returns when it first did; zero if not by limit.
func (f *fleet) runUntilTrue(limit time.Time, cond func() bool) time.Time {
	f.t.Helper()
	for {
		f.settle()
		if cond() {
			return f.clock.Now()
		}
		if !f.clock.Now().Before(limit) {
			return time.Time{}
		}
		f.clock.Step(fleetStep)
	}
}

// TestOneAccountFailingDoesNotDownAHost: one credentials whose logins
// always get a 500 or a 429, used by five TokenRequests of a namespace, on
// a host others use without trouble: the host is never marked down (each
// of the five backs off on its own, as before), and the others' tokens are
// refreshed on time, never expiring.
func TestOneAccountFailingDoesNotDownAHost(t *testing.T) {
	f := newFleet(t, 60*time.Second)
	t0 := f.clock.Now()
	good := members([]string{"good-a", "good-b"}, 10)
	bad := members([]string{"bad"}, 5)
	for i := range bad {
		bad[i].id = "the-quota-exceeded-account"
	}
	f.add(good)
	f.add(bad)
	n := 0
	f.prov.answer = func(_ time.Time, id string) error {
		if id != "the-quota-exceeded-account" {
			return nil
		}
		n++
		if n%2 == 0 {
			return status429
		}
		return status500
	}
	var goodKeys []types.NamespacedName
	for _, m := range good {
		goodKeys = append(goodKeys, m.key)
	}
	f.runUntil(t0.Add(5*time.Minute), func() {
		if f.r.gate.isDown("aml.example") {
			t.Fatalf("the host went down at +%s for one account's failures", f.clock.Since(t0))
		}
		if f.clock.Since(t0) > 10*time.Second {
			if bad := f.notValid(goodKeys, t0); len(bad) != 0 {
				t.Fatalf("at +%s the Secrets of %v hold no valid token", f.clock.Since(t0), bad)
			}
		}
	})
	badAttempts, _ := f.prov.within(t0, f.clock.Now(), func(id string) bool { return id == "the-quota-exceeded-account" })
	// Each of the five on its own backoff: 5 s, 10 s, 20 s, 40 s, 80 s, 160 s: at most 6 each in 5 minutes.
	if badAttempts > 5*6 {
		t.Errorf("%d attempts of the failing account in 5 minutes, want at most 30 (its own backoff)", badAttempts)
	}
	if badAttempts < 5*3 {
		t.Errorf("%d attempts of the failing account in 5 minutes: it was held back, not on its own backoff", badAttempts)
	}
}

// TestFailingTenantDelaysOthersByOneProbe: a tenant whose logins always
// time out on a host another namespace shares marks the host down again
// and again; the other namespace's refreshes wait for at most one probe of
// the tenant's (namespaces take turns in the probes, and one that came
// to wait after the tenant's probe failed is the next), so at most two
// probe steps (the host's next probe, then its own), its tokens never
// expire, and it logs in once per token.
func TestFailingTenantDelaysOthersByOneProbe(t *testing.T) {
	f := newFleet(t, 60*time.Second)
	t0 := f.clock.Now()
	good := members([]string{"good"}, 10)
	f.add(good)
	f.runUntil(t0.Add(5*time.Second), nil)
	slow := members([]string{"slow"}, 5)
	f.add(slow)
	f.prov.answer = func(_ time.Time, id string) error {
		if strings.HasPrefix(id, "slow/") {
			return timedOut
		}
		return nil
	}
	f.prov.down = func() bool { return f.r.gate.isDown("aml.example") }
	var goodKeys []types.NamespacedName
	for _, m := range good {
		goodKeys = append(goodKeys, m.key)
	}
	slowProbes := func(from, to time.Time) int {
		f.prov.mu.Lock()
		defer f.prov.mu.Unlock()
		n := 0
		for _, a := range f.prov.attempts {
			if a.probe && strings.HasPrefix(a.id, "slow/") && a.at.After(from) && a.at.Before(to) {
				n++
			}
		}
		return n
	}
	// Each good refresh: when it was due (refreshAt of the token held) and
	// when its token was replaced.
	due := map[types.NamespacedName]time.Time{}
	var worst time.Duration
	refreshes, downs, wasDown, mostProbes := 0, 0, false, 0
	f.runUntil(t0.Add(10*time.Minute), func() {
		down := f.r.gate.isDown("aml.example")
		if down && !wasDown {
			downs++
		}

		wasDown = down
		for _, key := range goodKeys {
			h, ok := f.held(key)
			if !ok {
				continue
			}
			if !f.clock.Now().Before(h.ExpiresAt) {
				t.Fatalf("at +%s %s holds an expired token", f.clock.Since(t0), key)
			}
			at := policy.RefreshAt(h.ObtainedAt, h.ExpiresAt, nil, policy.JitterFor("uid-"+key.String()+"/"+policy.FormatTime(h.ExpiresAt)))
			if prev, ok := due[key]; ok && !prev.Equal(at) {
				// A new token: the refresh of the one before, due at prev.
				refreshes++
				worst = max(worst, h.ObtainedAt.Sub(prev))
				mostProbes = max(mostProbes, slowProbes(prev, h.ObtainedAt))
			}
			due[key] = at
		}
	})
	t.Logf("the host went down %d times; %d refreshes of the other namespace, the latest %s after it was due, after %d of the tenant's probes",
		downs, refreshes, worst, mostProbes)
	if downs < 3 {
		t.Fatalf("the host went down %d times in 10 minutes: the failing tenant was not tried", downs)
	}
	if refreshes < 10*10 {
		t.Errorf("%d refreshes of the other namespace's 10 tokens in 10 minutes, want every one (about 14 each)", refreshes)
	}
	if mostProbes > 1 {
		t.Errorf("a refresh of the other namespace waited for %d of the failing tenant's probes, want at most one", mostProbes)
	}
	if bound := 2 * DefaultHostHealth.ProbeBase; worst > bound {
		t.Errorf("a refresh of the other namespace came %s after it was due, want within %s", worst, bound)
	}
	if attempts, logins := f.prov.within(t0, f.clock.Now(), func(id string) bool { return strings.HasPrefix(id, "good/") }); attempts != logins {
		t.Errorf("the other namespace made %d attempts for %d logins: none should fail", attempts, logins)
	}
}
