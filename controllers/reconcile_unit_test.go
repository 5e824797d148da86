package controllers

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	writes atomic.Int32
	// conflicts makes the next n Secret updates fail with a conflict.
	conflicts atomic.Int32
}

func newUnitEnv(t *testing.T) *unitEnv {
	t.Helper()
	u := &unitEnv{clock: clocktesting.NewFakeClock(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))}
	u.prov = &countingProvider{clock: u.clock, lifetime: 3 * time.Hour}
	tr := &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "tr", Namespace: "ns", UID: "uid-1", Generation: 1},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			Provider: "aml", CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "creds"},
		},
	}
	creds := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "ns"},
		Data:       map[string][]byte{"email": []byte("a@b.c"), "password": []byte("pw")},
	}
	count := func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		u.writes.Add(1)
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
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				u.writes.Add(1)
				return c.Create(ctx, obj, opts...)
			},
			Update: count,
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				u.writes.Add(1)
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				u.writes.Add(1)
				return c.Delete(ctx, obj, opts...)
			},
		}).Build()
	u.r = &TokenRequestReconciler{
		Client: cl, APIReader: cl, Credentials: cl, Scheme: testScheme,
		Recorder:  events.NewFakeRecorder(100),
		Providers: providers.Registry{"aml": {Registration: providers.Registration{Name: "aml", DefaultEndpoint: "https://aml.example"}, Provider: u.prov}},
		Clock:     u.clock,
		Jitter:    func() float64 { return 0 },
	}
	return u
}

func (u *unitEnv) reconcile(t *testing.T) ctrl.Result {
	t.Helper()
	res, err := u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "tr"}})
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return res
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
	// 3h token, refreshBefore 5m, jitter is stable per token: refresh in
	// [2h54m30s, 2h55m], and the requeue lands on or after it.
	next := u.tokenRequest(t).Status.NextRefreshTime.Time
	start := u.clock.Now()
	if next.Before(start.Add(2*time.Hour+54*time.Minute+30*time.Second)) || next.After(start.Add(2*time.Hour+55*time.Minute)) {
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
