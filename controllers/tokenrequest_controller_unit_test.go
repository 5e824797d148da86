package controllers

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// Narrow unit tests of the reconciler's decisions with a fake clock and the
// fake client (the envtest suite covers the real API server).

// countingProvider issues tokens valid for lifetime from the fake clock.
type countingProvider struct {
	clock    *clocktesting.FakeClock
	lifetime time.Duration
	logins   atomic.Int32
	err      error
}

func (p *countingProvider) Login(context.Context, string, providers.Credentials) (*providers.Token, error) {
	p.logins.Add(1)
	if p.err != nil {
		return nil, p.err
	}
	now := p.clock.Now()
	return &providers.Token{Value: "tok-" + now.Format(time.RFC3339Nano), ObtainedAt: now, ExpiresAt: now.Add(p.lifetime)}, nil
}

type unitEnv struct {
	r      *TokenRequestReconciler
	clock  *clocktesting.FakeClock
	prov   *countingProvider
	events *events.FakeRecorder
	writes atomic.Int32
	// conflicts makes the next n Secret updates fail with a conflict.
	conflicts atomic.Int32
	// refuseSecrets makes Secret writes fail as a ResourceQuota would.
	refuseSecrets atomic.Bool
	// failStatus makes status writes fail.
	failStatus atomic.Bool
	// failTargetGets makes the next n reads of the target Secret fail.
	failTargetGets atomic.Int32
	// loginEnded: a login handed to the gate ended; its TokenRequest is due
	// a reconcile, as the controller's queue would give it.
	loginEnded bool
}

// refusedByQuota is what the API server answers a Secret create over quota.
func refusedByQuota(name string) error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, name,
		errors.New("exceeded quota: secrets-quota, requested: count/secrets=1, used: count/secrets=5, limited: count/secrets=5"))
}

func newUnitEnv(t *testing.T) *unitEnv {
	t.Helper()
	u := &unitEnv{clock: clocktesting.NewFakeClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))}
	u.prov = &countingProvider{clock: u.clock, lifetime: 3 * time.Hour}
	tr := &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "tr", Namespace: "ns", UID: "uid-1", Generation: 1},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec: tokensyncv1alpha1.LoginSpec{
				Provider: "aml",
			},
			CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "creds"},
		},
	}
	creds := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "ns", Labels: credentialsLabels()},
		Data:       map[string][]byte{"email": []byte("a@b.c"), "password": []byte("pw")},
	}
	count := func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		u.writes.Add(1)
		if _, ok := obj.(*corev1.Secret); ok && u.refuseSecrets.Load() {
			return refusedByQuota(obj.GetName())
		}
		if _, ok := obj.(*corev1.Secret); ok && u.conflicts.Load() > 0 {
			u.conflicts.Add(-1)
			return apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, obj.GetName(), nil)
		}
		return c.Update(ctx, obj, opts...)
	}
	cl := fake.NewClientBuilder().WithScheme(testScheme).
		WithObjects(tr, creds).
		WithStatusSubresource(&tokensyncv1alpha1.TokenRequest{}).
		WithInterceptorFuncs(interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.Secret); ok && key.Name == "tr" && u.failTargetGets.Load() > 0 {
					u.failTargetGets.Add(-1)
					return apierrors.NewServiceUnavailable("the API server is restarting")
				}
				return c.Get(ctx, key, obj, opts...)
			},
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				u.writes.Add(1)
				if _, ok := obj.(*corev1.Secret); ok && u.refuseSecrets.Load() {
					return refusedByQuota(obj.GetName())
				}
				return c.Create(ctx, obj, opts...)
			},
			Update: count,
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				u.writes.Add(1)
				if u.failStatus.Load() {
					return apierrors.NewServiceUnavailable("etcdserver: mvcc: database space exceeded")
				}
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				u.writes.Add(1)
				return c.Delete(ctx, obj, opts...)
			},
		}).Build()
	u.events = events.NewFakeRecorder(100)
	u.r = &TokenRequestReconciler{
		Client: cl, APIReader: cl, Credentials: cl, Scheme: testScheme,
		Recorder: u.events,
		Providers: providers.Registry{"aml": {Registration: providers.Registration{
			Name: "aml", DefaultEndpoint: "https://aml.example",
			CredentialKeys: []providers.CredentialKey{{Name: "email"}, {Name: "password"}},
		}, Provider: u.prov}},
		Clock:        u.clock,
		Jitter:       func() float64 { return 0 },
		fingerprints: staticFingerprinter([]byte("unit-test-fingerprint-key-32-bytes")),
	}
	// Logins run at once, in the reconcile that hands them over; their end
	// asks for the reconcile the controller's queue would give.
	u.r.gate = newLoginGate(LoginLimits{PerEndpointRate: -1}, u.clock)
	u.r.gate.goFunc = func(_ types.NamespacedName, run func()) { run() }
	u.r.gate.start(context.Background(), "", func(types.NamespacedName) { u.loginEnded = true })
	return u
}

// reconcile reconciles the TokenRequest, and again when a login it handed
// over ended, as the controller's queue would.
func (u *unitEnv) reconcile(t *testing.T) ctrl.Result {
	t.Helper()
	for {
		u.loginEnded = false
		res, err := u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "tr"}})
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		if !u.loginEnded {
			return res
		}
	}
}

func (u *unitEnv) tokenRequest(t *testing.T) *tokensyncv1alpha1.TokenRequest {
	t.Helper()
	tr := &tokensyncv1alpha1.TokenRequest{}
	if err := u.r.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: "tr"}, tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestReconcileRefreshesExactlyWhenDue(t *testing.T) {
	u := newUnitEnv(t)
	res := u.reconcile(t)
	if u.prov.logins.Load() != 1 {
		t.Fatalf("first reconcile: %d logins", u.prov.logins.Load())
	}
	// 3h token, refreshBefore unset (window 5m spread over 0.75..1.25),
	// jitter stable per token: refresh in [2h53m45s, 2h56m15s], and the
	// requeue lands on or after it.
	next := u.tokenRequest(t).Status.NextRefreshTime.Time
	start := u.clock.Now()
	if next.Before(start.Add(2*time.Hour+53*time.Minute+45*time.Second)) || next.After(start.Add(2*time.Hour+56*time.Minute+15*time.Second)) {
		t.Fatalf("next refresh at %s", next.Sub(start))
	}
	if fire := start.Add(res.RequeueAfter); fire.Before(next) {
		t.Fatalf("requeue fires at %s, before the refresh at %s", fire, next)
	}

	// A reconcile that changes nothing makes no API write and no login.
	writes := u.writes.Load()
	u.clock.SetTime(next.Add(-time.Second))
	u.reconcile(t)
	if u.writes.Load() != writes || u.prov.logins.Load() != 1 {
		t.Fatalf("a reconcile before the refresh time wrote %d times, logged in %d times", u.writes.Load()-writes, u.prov.logins.Load()-1)
	}
	u.clock.SetTime(next)
	u.reconcile(t)
	if u.prov.logins.Load() != 2 {
		t.Fatalf("no login at the refresh time")
	}
}

func TestReconcileBackoffGating(t *testing.T) {
	u := newUnitEnv(t)
	u.r.MinLoginInterval = -1 // the backoff alone (TestReconcileMinLoginInterval has both)
	u.prov.err = providers.Errorf(providers.ProviderUnavailable, "AML Watcher answered HTTP 503")
	res := u.reconcile(t)
	if res.RequeueAfter != 5*time.Second {
		t.Fatalf("first retry after %s, want 5s", res.RequeueAfter)
	}
	// Reconciles before the retry time (a resync, a Secret event) do not log in.
	u.clock.Step(4 * time.Second)
	u.reconcile(t)
	if u.prov.logins.Load() != 1 {
		t.Fatalf("%d logins before the backoff ended", u.prov.logins.Load())
	}
	u.clock.Step(time.Second)
	if res = u.reconcile(t); res.RequeueAfter != 10*time.Second || u.prov.logins.Load() != 2 {
		t.Fatalf("second attempt: %d logins, next after %s (want 10s)", u.prov.logins.Load(), res.RequeueAfter)
	}
	if tr := u.tokenRequest(t); tr.Status.FailedAttempts != 2 {
		t.Fatalf("failedAttempts %d", tr.Status.FailedAttempts)
	}
	// A spec edit retries at once.
	tr := u.tokenRequest(t)
	tr.Generation = 2
	tr.Spec.Endpoint = "https://aml2.example"
	if err := u.r.Update(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	u.prov.err = nil
	u.reconcile(t)
	if u.prov.logins.Load() != 3 || u.tokenRequest(t).Status.FailedAttempts != 0 {
		t.Fatalf("a spec edit did not retry at once")
	}
}

// TestReconcileMinLoginInterval: one TokenRequest logs in at most once per
// minimum login interval (the default, 10 s), failed attempts included,
// whatever its token's lifetime: a token that lives 4 s is written, and
// Ready says it lives shorter than the interval; a force-refresh, a
// failure's retry and a credentials change inside the interval wait for
// its end; the last login is read from status, so the memory a restart
// loses does not reset it.
func TestReconcileMinLoginInterval(t *testing.T) {
	u := newUnitEnv(t)
	u.prov.lifetime = 4 * time.Second
	t0 := u.clock.Now()
	logins := func(want int32, when string) {
		t.Helper()
		if n := u.prov.logins.Load(); n != want {
			t.Fatalf("%s: %d logins, want %d", when, n, want)
		}
	}
	u.reconcile(t)
	logins(1, "the first login")
	if c := u.ready(t); c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "lives 4s, shorter than the minimum login interval of 10s") {
		t.Errorf("Ready for a 4 s token: %s/%s %q", c.Status, c.Reason, c.Message)
	}

	u.clock.Step(3 * time.Second)
	tr := u.tokenRequest(t)
	tr.Annotations = map[string]string{tokensyncv1alpha1.AnnotationForceRefresh: "1"}
	if err := u.r.Update(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	if res := u.reconcile(t); res.RequeueAfter != 7*time.Second {
		t.Errorf("a force-refresh 3 s after the login looks again after %s, want the interval's end, 7 s later", res.RequeueAfter)
	}
	logins(1, "a force-refresh 3 s after the login")
	u.r.memory.forget(types.NamespacedName{Namespace: "ns", Name: "tr"}) // as a restart would
	u.clock.Step(6 * time.Second)                                        // the token expired 5 s ago
	u.reconcile(t)
	logins(1, "9 s after the login, the token expired, memory lost")
	u.clock.Step(time.Second)
	u.reconcile(t)
	logins(2, "the interval's end")

	// A failed attempt counts as a login; so does its retry.
	u.prov.err = providers.Errorf(providers.ProviderUnavailable, "AML Watcher answered HTTP 503")
	u.clock.SetTime(t0.Add(20 * time.Second))
	u.reconcile(t)
	logins(3, "the token due after the interval")
	u.clock.Step(5 * time.Second) // the backoff is over
	u.reconcile(t)
	logins(3, "the backoff over, 5 s after the failure")
	u.updateCredentials(t, func(s *corev1.Secret) { s.Data["password"] = []byte("rotated-password") })
	u.reconcile(t)
	logins(3, "a credentials change 5 s after the failure")
	u.prov.err = nil
	u.clock.Step(5 * time.Second)
	u.reconcile(t)
	logins(4, "10 s after the failure")
	if c := u.ready(t); c.Status != metav1.ConditionTrue {
		t.Errorf("Ready %s/%s after the last login", c.Status, c.Reason)
	}
}

func TestReconcileRetriesConflictsWithoutNewLogin(t *testing.T) {
	u := newUnitEnv(t)
	u.reconcile(t)
	s := &corev1.Secret{}
	if err := u.r.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: "tr"}, s); err != nil {
		t.Fatal(err)
	}
	first := string(s.Data["token"])
	u.clock.SetTime(u.tokenRequest(t).Status.NextRefreshTime.Time)
	u.conflicts.Store(2) // someone else updates the Secret twice meanwhile
	u.reconcile(t)
	if err := u.r.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: "tr"}, s); err != nil {
		t.Fatal(err)
	}
	if u.prov.logins.Load() != 2 || string(s.Data["token"]) == first {
		t.Fatalf("after conflicts: %d logins (want 2), token replaced %v", u.prov.logins.Load(), string(s.Data["token"]) != first)
	}
}

func (u *unitEnv) secret(t *testing.T) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := u.r.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: "tr"}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	return s
}

func (u *unitEnv) ready(t *testing.T) *metav1.Condition {
	t.Helper()
	return readyCondition(u.tokenRequest(t))
}

func (u *unitEnv) updateCredentials(t *testing.T, mutate func(*corev1.Secret)) {
	t.Helper()
	s := &corev1.Secret{}
	if err := u.r.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: "creds"}, s); err != nil {
		t.Fatal(err)
	}
	mutate(s)
	if err := u.r.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func (u *unitEnv) updateSpec(t *testing.T, mutate func(*tokensyncv1alpha1.TokenRequest)) {
	t.Helper()
	tr := u.tokenRequest(t)
	mutate(tr)
	tr.Generation++
	if err := u.r.Update(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
}

// drainEvents returns the events recorded so far.
func (u *unitEnv) drainEvents() []string {
	var out []string
	for {
		select {
		case e := <-u.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// TestReconcileKeepsTokenWhenSecretWriteRefused: a quota refuses the
// Secret: the token obtained is kept and its write retried with backoff,
// never a second login for it; once it expired unwritten, a dry-run write
// must pass before another login is spent.
func TestReconcileKeepsTokenWhenSecretWriteRefused(t *testing.T) {
	u := newUnitEnv(t)
	u.refuseSecrets.Store(true)
	res := u.reconcile(t)
	if c := u.ready(t); c.Reason != tokensyncv1alpha1.ReasonSecretWriteFailed || !strings.Contains(c.Message, "exceeded quota") {
		t.Fatalf("Ready %+v, want SecretWriteFailed with the API server's reason", c)
	}
	if res.RequeueAfter != 5*time.Second {
		t.Errorf("write retried after %s, want 5s", res.RequeueAfter)
	}
	for i := 0; i < 6; i++ { // retries at 5s, 10s, 20s, ...: none logs in
		u.clock.Step(res.RequeueAfter)
		res = u.reconcile(t)
	}
	if n := u.prov.logins.Load(); n != 1 {
		t.Fatalf("%d logins while the write was refused, want 1", n)
	}
	u.refuseSecrets.Store(false)
	u.clock.Step(res.RequeueAfter)
	u.reconcile(t)
	if c := u.ready(t); c.Status != metav1.ConditionTrue {
		t.Fatalf("Ready %+v after writes were allowed", c)
	}
	if s := u.secret(t); s == nil || !strings.HasPrefix(string(s.Data["token"]), "tok-") || u.prov.logins.Load() != 1 {
		t.Fatalf("the kept token was not written (logins %d)", u.prov.logins.Load())
	}

	// Refused for longer than the token lives: the kept token expires; no
	// new login until a dry-run write passes.
	if err := u.r.Delete(context.Background(), u.secret(t)); err != nil {
		t.Fatal(err)
	}
	u.refuseSecrets.Store(true)
	u.reconcile(t) // second login, write refused
	for i := 0; i < 40; i++ {
		u.clock.Step(10 * time.Minute)
		u.reconcile(t)
	}
	if n := u.prov.logins.Load(); n != 2 {
		t.Fatalf("%d logins over 6h40m of refused writes, want 2", n)
	}
	u.refuseSecrets.Store(false)
	u.clock.Step(10 * time.Minute)
	u.reconcile(t)
	if n := u.prov.logins.Load(); n != 3 || u.secret(t) == nil || u.ready(t).Status != metav1.ConditionTrue {
		t.Fatalf("after writes were allowed again: %d logins (want 3), Ready %+v", n, u.ready(t))
	}
}

// TestReconcileStatusWriteFailureKeepsBackoff: a failed login whose status
// cannot be written is not retried at once: the next reconcile sees the
// failure from memory and writes the status, without a login.
func TestReconcileStatusWriteFailureKeepsBackoff(t *testing.T) {
	u := newUnitEnv(t)
	u.prov.err = providers.Errorf(providers.AuthenticationFailed, "AML Watcher rejected the credentials (HTTP 401)")
	u.failStatus.Store(true)
	// The login is handed over and ends; the reconcile it asks for records
	// the failure, and reports the refused status write.
	if _, err := u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "tr"}}); err != nil || !u.loginEnded {
		t.Fatalf("handing the login over: %v (ended %v)", err, u.loginEnded)
	}
	if _, err := u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "tr"}}); err == nil {
		t.Fatal("a failed status write was not reported")
	}
	for i := 0; i < 3; i++ {
		u.clock.Step(time.Second)
		_, _ = u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "tr"}})
	}
	if n := u.prov.logins.Load(); n != 1 {
		t.Fatalf("%d logins with known-bad credentials within seconds, want 1", n)
	}
	u.failStatus.Store(false)
	u.clock.Step(time.Second)
	u.reconcile(t)
	tr := u.tokenRequest(t)
	if c := readyCondition(tr); c == nil || c.Reason != tokensyncv1alpha1.ReasonAuthenticationFailed || tr.Status.FailedAttempts != 1 {
		t.Fatalf("status after the write recovered: %+v, failedAttempts %d", c, tr.Status.FailedAttempts)
	}
	if n := u.prov.logins.Load(); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
}

// TestReconcileEndpointChangeLogsInAtOnce: the token of the old issuer is
// replaced at once, and the Secret records the new one.
func TestReconcileEndpointChangeLogsInAtOnce(t *testing.T) {
	u := newUnitEnv(t)
	u.reconcile(t)
	if got := u.secret(t).Annotations[tokensyncv1alpha1.AnnotationEndpoint]; got != "https://aml.example" {
		t.Fatalf("endpoint annotation %q", got)
	}
	u.clock.Step(time.Minute)
	u.updateSpec(t, func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.Endpoint = "https://production.aml.example" })
	u.reconcile(t)
	if n := u.prov.logins.Load(); n != 2 {
		t.Fatalf("%d logins after the endpoint change, want 2", n)
	}
	if got := u.secret(t).Annotations[tokensyncv1alpha1.AnnotationEndpoint]; got != "https://production.aml.example" {
		t.Fatalf("endpoint annotation %q after the change", got)
	}
	if tr := u.tokenRequest(t); tr.Status.ObservedGeneration != tr.Generation {
		t.Errorf("observedGeneration %d, generation %d", tr.Status.ObservedGeneration, tr.Generation)
	}
}

// TestReconcileCredentialsMetadataCostsNoLogin: labels, annotations and a
// byte-identical rewrite of the credentials Secret cost no login, and do not
// cut short the backoff of wrong credentials; a content change does.
func TestReconcileCredentialsMetadataCostsNoLogin(t *testing.T) {
	u := newUnitEnv(t)
	u.reconcile(t)
	writes := u.writes.Load()
	u.updateCredentials(t, func(s *corev1.Secret) { s.Labels["team"] = "payments" })
	u.reconcile(t)
	u.updateCredentials(t, func(s *corev1.Secret) { s.Annotations = map[string]string{"reencrypted": "yes"} })
	u.reconcile(t)
	u.updateCredentials(t, func(*corev1.Secret) {}) // kubectl replace with the same data
	u.reconcile(t)
	// A key the provider does not send is not part of its credentials.
	u.updateCredentials(t, func(s *corev1.Secret) { s.Data["unrelated"] = []byte("shared-with-another-app") })
	u.reconcile(t)
	if n := u.prov.logins.Load(); n != 1 {
		t.Fatalf("%d logins after metadata-only changes, want 1", n)
	}
	if got := u.writes.Load() - writes; got != 4 { // the four credentials updates only
		t.Errorf("%d writes besides the credentials updates", got-4)
	}
	// A content change is (past the minimum login interval).
	u.clock.Step(DefaultMinLoginInterval)
	u.updateCredentials(t, func(s *corev1.Secret) { s.Data["password"] = []byte("rotated-password") })
	u.reconcile(t)
	if n := u.prov.logins.Load(); n != 2 {
		t.Fatalf("%d logins after the password changed, want 2", n)
	}

	// Wrong credentials: metadata churn does not bypass the backoff.
	u.prov.err = providers.Errorf(providers.AuthenticationFailed, "AML Watcher rejected the credentials (HTTP 401)")
	u.clock.Step(DefaultMinLoginInterval)
	u.updateCredentials(t, func(s *corev1.Secret) { s.Data["password"] = []byte("wrong-password") })
	u.reconcile(t)
	if n := u.prov.logins.Load(); n != 3 {
		t.Fatalf("%d logins, want 3 (the new password tried at once)", n)
	}
	for i := 0; i < 5; i++ {
		u.clock.Step(time.Second)
		u.updateCredentials(t, func(s *corev1.Secret) { s.Labels["bump"] = strconv.Itoa(i) })
		u.reconcile(t)
	}
	if n := u.prov.logins.Load(); n != 3 {
		t.Fatalf("%d logins after label bumps on wrong credentials, want 3", n)
	}
}

// TestReconcileMissingCredentialsKeepsValidToken: the credentials Secret is
// deleted while the token is valid: Ready stays True, a condition and one
// Warning event say so, no failure is counted; when the token is due the
// failure is reported and backed off.
func TestReconcileMissingCredentialsKeepsValidToken(t *testing.T) {
	u := newUnitEnv(t)
	u.reconcile(t)
	creds := &corev1.Secret{}
	if err := u.r.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: "creds"}, creds); err != nil {
		t.Fatal(err)
	}
	if err := u.r.Delete(context.Background(), creds); err != nil {
		t.Fatal(err)
	}
	u.drainEvents()
	for i := 0; i < 3; i++ {
		u.clock.Step(time.Minute)
		u.reconcile(t)
	}
	tr := u.tokenRequest(t)
	if c := readyCondition(tr); c.Status != metav1.ConditionTrue || tr.Status.FailedAttempts != 0 {
		t.Fatalf("Ready %+v, failedAttempts %d while the token is valid", c, tr.Status.FailedAttempts)
	}
	c := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionCredentialsFound)
	if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, `"creds"`) || !strings.Contains(c.Message, "email") {
		t.Fatalf("CredentialsFound condition %+v", c)
	}
	if evs := u.drainEvents(); len(evs) != 1 || !strings.Contains(evs[0], "Warning CredentialsNotFound") {
		t.Fatalf("events %q, want one Warning CredentialsNotFound", evs)
	}
	u.clock.SetTime(tr.Status.NextRefreshTime.Time)
	res := u.reconcile(t)
	tr = u.tokenRequest(t)
	if c := readyCondition(tr); c.Status != metav1.ConditionFalse || c.Reason != tokensyncv1alpha1.ReasonCredentialsNotFound || !strings.Contains(c.Message, "stays valid until") {
		t.Fatalf("Ready %+v when due", c)
	}
	if res.RequeueAfter != 5*time.Second || u.prov.logins.Load() != 1 {
		t.Fatalf("retry after %s, %d logins", res.RequeueAfter, u.prov.logins.Load())
	}
}

// TestReconcileTemplateRemovals: keys removed from secretTemplate leave the
// Secret; keys someone else added stay.
func TestReconcileTemplateRemovals(t *testing.T) {
	u := newUnitEnv(t)
	u.updateSpec(t, func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{
			Labels:      map[string]tokensyncv1alpha1.LabelValue{"tier": "gold", "team": "payments"},
			Annotations: map[string]string{"example.com/owner": "payments"},
		}
	})
	u.reconcile(t)
	s := u.secret(t)
	s.Labels["added-by-someone"] = "x"
	s.Annotations["reloader.stakater.com/match"] = "true"
	if err := u.r.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	u.updateSpec(t, func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{Labels: map[string]tokensyncv1alpha1.LabelValue{"tier": "silver"}}
	})
	u.reconcile(t)
	s = u.secret(t)
	if s.Labels["tier"] != "silver" || s.Labels["team"] != "" || s.Annotations["example.com/owner"] != "" {
		t.Errorf("template removals not applied: labels %v annotations %v", s.Labels, s.Annotations)
	}
	if s.Labels["added-by-someone"] != "x" || s.Annotations["reloader.stakater.com/match"] != "true" || s.Labels[tokensyncv1alpha1.LabelManagedBy] != tokensyncv1alpha1.ManagedByValue {
		t.Errorf("someone else's keys or tokensync's label removed: labels %v annotations %v", s.Labels, s.Annotations)
	}
	if n := u.prov.logins.Load(); n != 1 {
		t.Errorf("%d logins for template edits, want 1", n)
	}
}

// TestLoginInLineIsKeptByAnotherReconcile: a reconcile that finds the
// TokenRequest's login waiting in line for a slot waits for it and leaves it
// in line, since its end is what reconciles again. (Dropping it there left
// the TokenRequest without a status until something else touched it.)
func TestLoginInLineIsKeptByAnotherReconcile(t *testing.T) {
	u := newUnitEnv(t)
	u.r.gate = newLoginGate(LoginLimits{PerEndpointRate: -1, PerNamespaceInFlight: 1}, u.clock)
	var started []func()
	u.r.gate.goFunc = func(_ types.NamespacedName, run func()) { started = append(started, run) }
	u.r.gate.start(context.Background(), "", func(types.NamespacedName) { u.loginEnded = true })
	// Another TokenRequest's login holds the namespace's one slot.
	u.r.gate.submit(&loginJob{who: types.NamespacedName{Namespace: "ns", Name: "other"}, endpoint: "https://aml.example", issuer: "other",
		run: func(context.Context) loginEnd { return loginEnd{} }})
	if len(started) != 1 {
		t.Fatalf("%d logins started, want the other TokenRequest's", len(started))
	}
	key := types.NamespacedName{Namespace: "ns", Name: "tr"}
	reconcileOnce := func() ctrl.Result {
		t.Helper()
		res, err := u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		return res
	}
	reconcileOnce() // hands the login over: it waits in line
	// A second reconcile (an event) finds it in line, and looks again
	// later should its end never come.
	if res := reconcileOnce(); res.RequeueAfter != loginInFlightRecheck {
		t.Errorf("waiting for the login in line: requeue after %s, want %s", res.RequeueAfter, loginInFlightRecheck)
	}
	if in, ok := u.r.gate.inFlight(key); !ok || in.running {
		t.Fatalf("the login is no longer in line after a second reconcile (in flight %v, running %v)", ok, in.running)
	}
	started[0]() // the other login ends; the slot goes to tr's
	if len(started) != 2 {
		t.Fatalf("%d logins started, want tr's to start when the slot freed", len(started))
	}
	u.loginEnded = false
	started[1]()
	if !u.loginEnded {
		t.Fatal("tr's login ended without asking for a reconcile")
	}
	reconcileOnce()
	if n := u.prov.logins.Load(); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
	if c := meta.FindStatusCondition(u.tokenRequest(t).Status.Conditions, tokensyncv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Ready %+v after the login ended, want True", c)
	}
}

// TestLoginFailureSurvivesAFailedObservation: the reconcile after a failed
// login could not observe (the API server did not answer a read): the
// failure is recorded by the next one, with no second login. (Taking it at
// the start of the failed reconcile lost it, and the credentials the
// provider had just rejected were sent again at once.)
func TestLoginFailureSurvivesAFailedObservation(t *testing.T) {
	u := newUnitEnv(t)
	u.prov.err = providers.Errorf(providers.AuthenticationFailed, "AML Watcher rejected the credentials (HTTP 401)")
	key := types.NamespacedName{Namespace: "ns", Name: "tr"}
	reconcileOnce := func() error {
		_, err := u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
		return err
	}
	u.loginEnded = false
	if err := reconcileOnce(); err != nil || !u.loginEnded {
		t.Fatalf("first reconcile: %v, login ended %v", err, u.loginEnded)
	}
	u.failTargetGets.Store(100)
	if err := reconcileOnce(); err == nil {
		t.Fatal("the reconcile that could not read the target Secret did not fail")
	}
	u.failTargetGets.Store(0)
	if err := reconcileOnce(); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	tr := u.tokenRequest(t)
	if c := readyCondition(tr); c == nil || c.Reason != tokensyncv1alpha1.ReasonAuthenticationFailed {
		t.Fatalf("Ready %+v, want the login's failure recorded", c)
	}
	if n := u.prov.logins.Load(); n != 1 {
		t.Fatalf("%d logins, want 1: the rejected credentials were sent again", n)
	}
}
