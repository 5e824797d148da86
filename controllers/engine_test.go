package controllers

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// The engine's act paths for both kinds, from one table: each row runs
// against a TokenRequest and against a ClusterTokenRequest (fake client,
// fake clock), and checks what the engine does alike for both: logins
// spent, the Secret holding the token (the target Secret; the Secret in
// the operator's namespace), the Ready reason.

// engineKind is one kind as the table drives it.
type engineKind struct {
	name      string
	key       types.NamespacedName
	held      types.NamespacedName
	reconcile func(context.Context, ctrl.Request) (ctrl.Result, error)
	status    func(t *testing.T) tokensyncv1alpha1.TokenStatus
	suspend   func(t *testing.T, on bool)
}

type engineEnv struct {
	c      client.Client
	clock  *clocktesting.FakeClock
	prov   *countingProvider
	events *events.FakeRecorder
	// refuseHeld makes writes of the Secret holding the token fail as a
	// ResourceQuota would.
	refuseHeld atomic.Bool
	held       types.NamespacedName
	loginEnded atomic.Bool
}

const engineOperatorNS = "tokensync-system"

func newEngineEnv(t *testing.T, kindName string) (*engineEnv, engineKind) {
	t.Helper()
	e := &engineEnv{clock: clocktesting.NewFakeClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))}
	e.prov = &countingProvider{clock: e.clock, lifetime: time.Hour}
	spec := tokensyncv1alpha1.LoginSpec{Provider: "aml"}
	tr := &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "tr", Namespace: "ns", UID: "uid-tr", Generation: 1},
		Spec:       tokensyncv1alpha1.TokenRequestSpec{LoginSpec: spec, CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "creds"}},
	}
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "ctr", UID: "uid-ctr", Generation: 1},
		Spec: tokensyncv1alpha1.ClusterTokenRequestSpec{LoginSpec: spec, SecretName: "shared", Namespaces: []string{"ns"},
			CredentialsSecretRef: tokensyncv1alpha1.NamespacedSecretReference{Namespace: "ns", Name: "creds"}},
	}
	creds := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "ns", Labels: credentialsLabels()},
		Data:       map[string][]byte{"email": []byte("a@b.c"), "password": []byte("SENTINEL-PASSWORD")},
	}
	refuse := func(obj client.Object) error {
		if _, ok := obj.(*corev1.Secret); ok && e.refuseHeld.Load() && client.ObjectKeyFromObject(obj) == e.held {
			return refusedByQuota(obj.GetName())
		}
		return nil
	}
	e.c = fake.NewClientBuilder().WithScheme(testScheme).
		WithObjects(tr, ctr, creds,
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}},
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: engineOperatorNS}}).
		WithStatusSubresource(&tokensyncv1alpha1.TokenRequest{}, &tokensyncv1alpha1.ClusterTokenRequest{}).
		WithIndex(&corev1.Secret{}, indexClusterOwner, clusterOwnerOfSecret).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if err := refuse(obj); err != nil {
					return err
				}
				return c.Create(ctx, obj, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				if err := refuse(obj); err != nil {
					return err
				}
				return c.Update(ctx, obj, opts...)
			},
		}).Build()
	e.events = events.NewFakeRecorder(100)
	r := &TokenRequestReconciler{
		Client: e.c, APIReader: e.c, Credentials: e.c, Scheme: testScheme, Recorder: e.events,
		Providers: providers.Registry{"aml": {Registration: providers.Registration{
			Name: "aml", DefaultEndpoint: "https://aml.example",
			CredentialKeys: []providers.CredentialKey{{Name: "email"}, {Name: "password"}},
		}, Provider: e.prov}},
		FingerprintKey: types.NamespacedName{Namespace: engineOperatorNS, Name: "key"},
		Clock:          e.clock,
		Jitter:         func() float64 { return 0 },
		fingerprints:   staticFingerprinter([]byte("engine-test-fingerprint-key-32-b")),
	}
	r.gate = newLoginGate(LoginLimits{PerEndpointRate: -1}, e.clock)
	r.gate.goFunc = func(_ types.NamespacedName, run func()) { run() }
	ended := func(types.NamespacedName) { e.loginEnded.Store(true) }
	r.gate.start(context.Background(), "", ended)
	r.gate.start(context.Background(), clusterKind, ended)

	var k engineKind
	switch kindName {
	case "TokenRequest":
		k = engineKind{name: kindName, key: types.NamespacedName{Namespace: "ns", Name: "tr"},
			held: types.NamespacedName{Namespace: "ns", Name: "tr"}, reconcile: r.Reconcile}
		k.status = func(t *testing.T) tokensyncv1alpha1.TokenStatus {
			got := &tokensyncv1alpha1.TokenRequest{}
			if err := e.c.Get(context.Background(), k.key, got); err != nil {
				t.Fatal(err)
			}
			return got.Status.TokenStatus
		}
		k.suspend = func(t *testing.T, on bool) {
			got := &tokensyncv1alpha1.TokenRequest{}
			if err := e.c.Get(context.Background(), k.key, got); err != nil {
				t.Fatal(err)
			}
			got.Spec.Suspend, got.Generation = on, got.Generation+1
			if err := e.c.Update(context.Background(), got); err != nil {
				t.Fatal(err)
			}
		}
	default:
		cr := &ClusterTokenRequestReconciler{TokenRequestReconciler: r}
		k = engineKind{name: kindName, key: types.NamespacedName{Name: "ctr"},
			held: types.NamespacedName{Namespace: engineOperatorNS, Name: HeldSecretName("ctr")}, reconcile: cr.Reconcile}
		k.status = func(t *testing.T) tokensyncv1alpha1.TokenStatus {
			got := &tokensyncv1alpha1.ClusterTokenRequest{}
			if err := e.c.Get(context.Background(), k.key, got); err != nil {
				t.Fatal(err)
			}
			return got.Status.TokenStatus
		}
		k.suspend = func(t *testing.T, on bool) {
			got := &tokensyncv1alpha1.ClusterTokenRequest{}
			if err := e.c.Get(context.Background(), k.key, got); err != nil {
				t.Fatal(err)
			}
			got.Spec.Suspend, got.Generation = on, got.Generation+1
			if err := e.c.Update(context.Background(), got); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.held = k.held
	return e, k
}

// run reconciles, and again when a login it handed over ended.
func (e *engineEnv) run(t *testing.T, k engineKind) ctrl.Result {
	t.Helper()
	for {
		e.loginEnded.Store(false)
		res, err := k.reconcile(context.Background(), ctrl.Request{NamespacedName: k.key})
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		if !e.loginEnded.Load() {
			return res
		}
	}
}

// token is what the Secret holding the token holds ("" when none).
func (e *engineEnv) token(k engineKind) string {
	s := &corev1.Secret{}
	if err := e.c.Get(context.Background(), k.held, s); err != nil {
		return ""
	}
	return string(s.Data[tokensyncv1alpha1.SecretKeyToken])
}

func readyReason(st tokensyncv1alpha1.TokenStatus) string {
	if c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return "none"
}

func TestEngineActsAlikeForBothKinds(t *testing.T) {
	rows := []struct {
		name string
		run  func(t *testing.T, e *engineEnv, k engineKind)
	}{
		{"login, write, then keep with no login and no write", func(t *testing.T, e *engineEnv, k engineKind) {
			e.run(t, k)
			first := e.token(k)
			if first == "" || e.prov.logins.Load() != 1 || readyReason(k.status(t)) != "True/TokenIssued" {
				t.Fatalf("token %q, %d logins, Ready %s", first, e.prov.logins.Load(), readyReason(k.status(t)))
			}
			held := &corev1.Secret{}
			_ = e.c.Get(context.Background(), k.held, held)
			e.clock.Step(time.Minute)
			e.run(t, k)
			again := &corev1.Secret{}
			_ = e.c.Get(context.Background(), k.held, again)
			if e.prov.logins.Load() != 1 || again.ResourceVersion != held.ResourceVersion {
				t.Errorf("a valid token: %d logins, Secret rewritten %v", e.prov.logins.Load(), again.ResourceVersion != held.ResourceVersion)
			}
		}},
		{"refreshed when due, one login", func(t *testing.T, e *engineEnv, k engineKind) {
			e.run(t, k)
			first := e.token(k)
			e.clock.SetTime(k.status(t).NextRefreshTime.Time)
			e.run(t, k)
			if e.prov.logins.Load() != 2 || e.token(k) == first {
				t.Errorf("%d logins, token changed %v", e.prov.logins.Load(), e.token(k) != first)
			}
		}},
		{"a rejected login keeps the token and backs off", func(t *testing.T, e *engineEnv, k engineKind) {
			e.run(t, k)
			first := e.token(k)
			e.prov.err = &providers.Error{Kind: providers.InvalidCredentials, Message: "the provider rejected the credentials"}
			e.clock.SetTime(k.status(t).NextRefreshTime.Time)
			res := e.run(t, k)
			st := k.status(t)
			if e.token(k) != first || readyReason(st) != "False/InvalidCredentials" || st.FailedAttempts != 1 || res.RequeueAfter <= 0 {
				t.Errorf("token kept %v, Ready %s, attempts %d, requeue %s", e.token(k) == first, readyReason(st), st.FailedAttempts, res.RequeueAfter)
			}
			e.run(t, k)
			if e.prov.logins.Load() != 2 {
				t.Errorf("%d logins, want 2: the retry waits for its backoff", e.prov.logins.Load())
			}
		}},
		{"suspended: no login, no write", func(t *testing.T, e *engineEnv, k engineKind) {
			k.suspend(t, true)
			e.run(t, k)
			if e.prov.logins.Load() != 0 || e.token(k) != "" || readyReason(k.status(t)) != "False/Suspended" {
				t.Errorf("%d logins, token %q, Ready %s", e.prov.logins.Load(), e.token(k), readyReason(k.status(t)))
			}
		}},
		{"the Secret deleted: one login writes it again", func(t *testing.T, e *engineEnv, k engineKind) {
			e.run(t, k)
			if err := e.c.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: k.held.Namespace, Name: k.held.Name}}); err != nil {
				t.Fatal(err)
			}
			e.clock.Step(time.Minute)
			e.run(t, k)
			if e.prov.logins.Load() != 2 || e.token(k) == "" {
				t.Errorf("%d logins, token %q", e.prov.logins.Load(), e.token(k))
			}
		}},
		{"a refused write keeps the token obtained and retries it without a login", func(t *testing.T, e *engineEnv, k engineKind) {
			e.refuseHeld.Store(true)
			e.run(t, k)
			if readyReason(k.status(t)) != "False/SecretWriteFailed" || e.token(k) != "" {
				t.Fatalf("Ready %s, token %q", readyReason(k.status(t)), e.token(k))
			}
			e.refuseHeld.Store(false)
			e.clock.Step(time.Minute)
			e.run(t, k)
			if e.prov.logins.Load() != 1 || e.token(k) == "" || readyReason(k.status(t)) != "True/TokenIssued" {
				t.Errorf("%d logins, token %q, Ready %s", e.prov.logins.Load(), e.token(k), readyReason(k.status(t)))
			}
		}},
	}
	for _, kind := range []string{"TokenRequest", "ClusterTokenRequest"} {
		for _, row := range rows {
			t.Run(kind+"/"+row.name, func(t *testing.T) {
				e, k := newEngineEnv(t, kind)
				row.run(t, e, k)
				for ev := range drain(e.events) {
					if containsAny(ev, "SENTINEL", "tok-") {
						t.Errorf("an event holds a secret value: %s", ev)
					}
				}
			})
		}
	}
}

func drain(r *events.FakeRecorder) <-chan string {
	out := make(chan string, len(r.Events))
	for {
		select {
		case ev := <-r.Events:
			out <- ev
		default:
			close(out)
			return out
		}
	}
}

func containsAny(s string, subs ...string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}

// TestSharedCredentialsRotationSeenByEach: two TokenRequests read one
// credentials Secret; each fingerprints it with its own key, so a rotation
// is seen by both (one login each), not only by the first to look.
func TestSharedCredentialsRotationSeenByEach(t *testing.T) {
	u := newUnitEnv(t)
	second := u.tokenRequest(t).DeepCopy()
	second.ObjectMeta = metav1.ObjectMeta{Name: "tr2", Namespace: "ns", UID: "uid-2", Generation: 1}
	second.Status = tokensyncv1alpha1.TokenRequestStatus{}
	if err := u.r.Create(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	reconcile := func(name string) {
		for {
			u.loginEnded = false
			if _, err := u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}}); err != nil {
				t.Fatal(err)
			}
			if !u.loginEnded {
				return
			}
		}
	}
	reconcile("tr")
	reconcile("tr2")
	if n := u.prov.logins.Load(); n != 2 {
		t.Fatalf("%d logins for two TokenRequests", n)
	}
	u.clock.Step(time.Minute) // past the minimum login interval
	u.updateCredentials(t, func(s *corev1.Secret) { s.Data["password"] = []byte("rotated") })
	reconcile("tr")
	reconcile("tr2")
	if n := u.prov.logins.Load(); n != 4 {
		t.Errorf("%d logins after the rotation, want 4: each TokenRequest logs in once with the new credentials", n)
	}
}
