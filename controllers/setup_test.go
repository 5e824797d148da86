package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/tokensync/tokensync/controllers/policy"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestTargetSecretTampered: the operator's own writes do not come back as
// reconciles; deletions, hand edits and metadata edits by others do.
func TestTargetSecretTampered(t *testing.T) {
	ours := func(value, fp string) *corev1.Secret {
		s := &corev1.Secret{}
		applyToken(s, policy.Issued{Token: &providers.Token{Value: value, ObtainedAt: time.Unix(0, 0), ExpiresAt: time.Unix(3600, 0)}, TokenFingerprint: fp})
		applyTemplate(s, nil)
		return s
	}
	p := targetSecretTampered()
	old := ours("tok-1", "k:1")
	tests := []struct {
		name string
		new  *corev1.Secret
		want bool
	}{
		{"a refresh by the operator", ours("tok-2", "k:2"), false},
		{"only tokensync annotations changed", func() *corev1.Secret {
			s := ours("tok-1", "k:1")
			s.Annotations["tokensync.io/credentials-version"] = "9"
			return s
		}(), false},
		{"token edited by hand", func() *corev1.Secret { s := ours("tok-1", "k:1"); s.Data["token"] = []byte("x"); return s }(), true},
		{"token removed", func() *corev1.Secret { s := ours("tok-1", "k:1"); delete(s.Data, "token"); return s }(), true},
		{"a label added by someone", func() *corev1.Secret { s := ours("tok-1", "k:1"); s.Labels["x"] = "y"; return s }(), true},
		{"an annotation added by someone", func() *corev1.Secret { s := ours("tok-1", "k:1"); s.Annotations["a/b"] = "c"; return s }(), true},
		{"bookkeeping stripped", &corev1.Secret{Data: map[string][]byte{"token": []byte("tok-1")}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: tt.new}); got != tt.want {
				t.Errorf("passes = %v, want %v", got, tt.want)
			}
		})
	}
	if p.Create(event.CreateEvent{Object: ours("tok", "k:t")}) {
		t.Error("the operator's own create came back as a reconcile")
	}
	if !p.Delete(event.DeleteEvent{Object: old}) {
		t.Error("a deletion did not reconcile")
	}
}

// testSecretCache is the cache transform of a manager whose namespace is "tokensync-system".
func testSecretCache() secretCache {
	return secretCache{operatorNamespace: "tokensync-system", interned: newInterner()}
}

// TestStripForCache: cached TokenRequests lose kubectl's copy of themselves
// and managedFields; the Secrets the operator wrote keep their annotations,
// which the operator writes back.
func TestStripForCache(t *testing.T) {
	tr := &tokensyncv1alpha1.TokenRequest{ObjectMeta: metav1.ObjectMeta{
		Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"spec":{}}`, tokensyncv1alpha1.AnnotationForceRefresh: "1"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}}
	if _, err := testSecretCache().transform(tr); err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Annotations[corev1.LastAppliedConfigAnnotation]; ok || tr.ManagedFields != nil || tr.Annotations[tokensyncv1alpha1.AnnotationForceRefresh] != "1" {
		t.Errorf("TokenRequest after stripping: %v %v", tr.Annotations, tr.ManagedFields)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: "{}"},
		OwnerReferences: []metav1.OwnerReference{controllerRef("TokenRequest")}}}
	if _, err := testSecretCache().transform(s); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Annotations[corev1.LastAppliedConfigAnnotation]; !ok {
		t.Error("a Secret's annotation was stripped: the operator would write it away")
	}
}

func controllerRef(kind string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: tokensyncv1alpha1.GroupVersion.String(), Kind: kind, Name: "owner", UID: "u-1", Controller: ptrTo(true)}
}

// TestCacheKeepsDataOnlyOfSecretsTheOperatorWrote: a Secret labelled as
// tokensync's is cached whole only when a TokenRequest or a
// ClusterTokenRequest controls it, or it lies in the operator's namespace;
// any other keeps its name, its controller reference, tokensync's label and
// owner annotations (bounded), and nothing its writer could make large.
func TestCacheKeepsDataOnlyOfSecretsTheOperatorWrote(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	secret := func(ns string, refs ...metav1.OwnerReference) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: "s", OwnerReferences: refs,
				Labels: map[string]string{tokensyncv1alpha1.LabelManagedBy: tokensyncv1alpha1.ManagedByValue, "filler": "y"},
				Annotations: map[string]string{
					tokensyncv1alpha1.AnnotationOwner: "tr", tokensyncv1alpha1.AnnotationClusterOwner: strings.Repeat("n", 300),
					annotationTokenFingerprint: "k:f", "filler": big,
				},
			},
			Data: map[string][]byte{"token": []byte(big)},
		}
	}
	other := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "d", UID: "u-2", Controller: ptrTo(true)}
	notController := controllerRef("TokenRequest")
	notController.Controller = nil
	lookalike := controllerRef("TokenRequest")
	lookalike.APIVersion = "tokensync.io.evil.example/v1"
	tests := []struct {
		name  string
		s     *corev1.Secret
		whole bool
	}{
		{"controlled by a TokenRequest", secret("team-a", controllerRef("TokenRequest")), true},
		{"controlled by a ClusterTokenRequest", secret("team-a", controllerRef("ClusterTokenRequest")), true},
		{"in the operator's namespace", secret("tokensync-system"), true},
		{"labelled, no owner (retained, or a tenant's)", secret("team-a"), false},
		{"controlled by something else", secret("team-a", other), false},
		{"a TokenRequest owner that is not the controller", secret("team-a", notController, other), false},
		{"a look-alike API group", secret("team-a", lookalike), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testSecretCache()
			if got := c.wholeInCache(tt.s); got != tt.whole {
				t.Fatalf("wholeInCache = %v, want %v", got, tt.whole)
			}
			if _, err := c.transform(tt.s); err != nil {
				t.Fatal(err)
			}
			if tt.whole {
				if len(tt.s.Data["token"]) != 1<<20 || tt.s.Annotations["filler"] != big {
					t.Error("a Secret the operator wrote lost its data or annotations")
				}
				return
			}
			if tt.s.Data != nil || len(tt.s.Labels) != 1 || len(tt.s.OwnerReferences) > 1 {
				t.Errorf("stripped Secret keeps data %d keys, labels %v, owner references %v", len(tt.s.Data), tt.s.Labels, tt.s.OwnerReferences)
			}
			want := map[string]string{tokensyncv1alpha1.AnnotationOwner: "tr"} // the 300-character name is no name
			if !maps.Equal(tt.s.Annotations, want) {
				t.Errorf("stripped Secret keeps annotations %v, want %v", tt.s.Annotations, want)
			}
			if c.wholeInCache(tt.s) {
				t.Error("a stripped Secret reads as whole: its readers would take it for the real one")
			}
		})
	}
}

// TestStripForCacheSharesRepeatedStrings: two cached Secrets decoded apart
// share one copy of the strings they repeat, keep every key and value, and
// the values that differ from object to object are not kept in the table.
func TestStripForCacheSharesRepeatedStrings(t *testing.T) {
	secret := func(fingerprint string) *corev1.Secret {
		c := strings.Clone // as decoded: each object has strings of its own
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: c("team-a"), Name: c("token-" + fingerprint),
				OwnerReferences: []metav1.OwnerReference{controllerRef("TokenRequest")},
				Labels:          map[string]string{c(tokensyncv1alpha1.LabelManagedBy): c(tokensyncv1alpha1.ManagedByValue)},
				Annotations: map[string]string{
					c(tokensyncv1alpha1.AnnotationProvider):  c("partner"),
					c(annotationTokenFingerprint):            c(fingerprint),
					c(tokensyncv1alpha1.AnnotationExpiresAt): c("2026-12-01T10:00:00Z"),
				},
			},
			Type: corev1.SecretType(c("Opaque")),
			Data: map[string][]byte{c("token"): []byte(fingerprint)},
		}
	}
	a, b := secret("fp-a-3c1e"), secret("fp-b-77d0")
	cache := testSecretCache()
	for _, s := range []*corev1.Secret{a, b} {
		if _, err := cache.transform(s); err != nil {
			t.Fatal(err)
		}
	}
	same := func(what, x, y string) {
		t.Helper()
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are not one copy", what, x, y)
		}
	}
	same("namespace", a.Namespace, b.Namespace)
	same("type", string(a.Type), string(b.Type))
	same("provider annotation", a.Annotations[tokensyncv1alpha1.AnnotationProvider], b.Annotations[tokensyncv1alpha1.AnnotationProvider])
	same("label value", a.Labels[tokensyncv1alpha1.LabelManagedBy], b.Labels[tokensyncv1alpha1.LabelManagedBy])
	keyOf := func(m map[string]string, want string) string {
		for k := range m {
			if k == want {
				return k
			}
		}
		t.Fatalf("key %q missing from %v", want, m)
		return ""
	}
	same("annotation key", keyOf(a.Annotations, annotationTokenFingerprint), keyOf(b.Annotations, annotationTokenFingerprint))
	if a.Annotations[annotationTokenFingerprint] != "fp-a-3c1e" || string(b.Data["token"]) != "fp-b-77d0" || len(a.Annotations) != 3 {
		t.Errorf("content changed: %v %v", a.Annotations, b.Data)
	}
	cache.interned.mu.Lock()
	defer cache.interned.mu.Unlock()
	for _, v := range []string{"fp-a-3c1e", "fp-b-77d0", "2026-12-01T10:00:00Z", "token-fp-a-3c1e"} {
		if _, ok := cache.interned.m[v]; ok {
			t.Errorf("%q, which differs from object to object, is kept in the table", v)
		}
	}
}

// TestInternerIsBounded: once full, the table keeps no more strings and
// gives each back as it came.
func TestInternerIsBounded(t *testing.T) {
	in := &interner{max: 2}
	in.s("a")
	in.s("b")
	c := strings.Clone("c")
	if got := in.s(c); got != "c" || unsafe.StringData(got) != unsafe.StringData(c) || len(in.m) != 2 {
		t.Errorf("full table: got %q, %d entries", got, len(in.m))
	}
}

// secretWatch samples a target Secret until stopped and remembers whether
// it was ever missing or empty, and every token it held.
type secretWatch struct {
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	lost   bool
	tokens map[string]bool
}

func watchSecret(e *env, name string) *secretWatch {
	w := &secretWatch{stop: make(chan struct{}), done: make(chan struct{}), tokens: map[string]bool{}}
	go func() {
		defer close(w.done)
		for {
			tok := e.token(name)
			w.mu.Lock()
			if tok == "" {
				w.lost = true
			} else {
				w.tokens[tok] = true
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	e.t.Cleanup(func() { w.finish() })
	return w
}

// finish stops sampling; it returns whether the Secret was ever without a
// token, and how many tokens it held.
func (w *secretWatch) finish() (lost bool, tokens int) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost, len(w.tokens)
}

// TestLeaderElectionFailover: two managers share a Lease. Only the leader
// logs in; when it stops (releasing the Lease) the other takes over without
// a single login for the tokens that are still valid, and serves new
// TokenRequests.
func TestLeaderElectionFailover(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	fake := providertest.Start(t)
	e := &env{t: t, ns: ns, fake: fake}
	leaseID := "tokensync-" + ns

	var loginsA, loginsB atomic.Int32
	mgrA, _, stopA := startManager(t, managerOptions{namespaces: []string{ns}, leaderID: leaseID,
		providers: countingProviders(builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second}), &loginsA)})
	select {
	case <-mgrA.Elected():
	case <-time.After(readyTimeout):
		t.Fatal("the first manager was not elected")
	}
	mgrB, _, _ := startManager(t, managerOptions{namespaces: []string{ns}, leaderID: leaseID,
		providers: countingProviders(builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second}), &loginsB)})

	e.createSecret("creds", partnerCreds)
	names := []string{"a", "b", "c"}
	for _, n := range names {
		e.createTokenRequest(n, providertest.Partner, "creds")
	}
	versions := map[string]string{}
	statuses := map[string]string{}
	for _, n := range names {
		tr := e.waitReady(n)
		b, _ := json.Marshal(tr.Status)
		statuses[n] = string(b)
		s, _ := e.secret(n)
		versions[n] = s.ResourceVersion + "/" + tr.ResourceVersion
	}
	select {
	case <-mgrB.Elected():
		t.Fatal("both managers are leaders")
	default:
	}
	if a, b := loginsA.Load(), loginsB.Load(); a != 3 || b != 0 {
		t.Fatalf("logins: leader %d, follower %d; want 3 and 0", a, b)
	}

	stopA()
	select {
	case <-mgrB.Elected():
	case <-time.After(readyTimeout):
		t.Fatal("the second manager did not take over")
	}
	// A new TokenRequest becoming Ready shows the new leader at work; its
	// queue started with the three others.
	e.createTokenRequest("d", providertest.Partner, "creds")
	e.waitReady("d")
	consistently(t, 2*time.Second, func() error {
		if a, b := loginsA.Load(), loginsB.Load(); a != 3 || b != 1 {
			return fmt.Errorf("logins: old leader %d, new leader %d; want 3 and 1 (only the new TokenRequest)", a, b)
		}
		return nil
	})
	if n := fake.Logins(providertest.Partner); n != 4 {
		t.Errorf("%d logins at the provider, want 4", n)
	}
	for _, n := range names {
		tr := e.tokenRequest(n)
		s, _ := e.secret(n)
		if v := s.ResourceVersion + "/" + tr.ResourceVersion; v != versions[n] {
			b, _ := json.Marshal(tr.Status)
			t.Errorf("%s: Secret or status written after the failover (%s -> %s)\n%s\n%s", n, versions[n], v, statuses[n], b)
		}
		if c := readyCondition(tr); c.Reason != tokensyncv1alpha1.ReasonTokenIssued {
			t.Errorf("%s: %s", n, c.Reason)
		}
	}
}

// countingProviders wraps every provider of a registry to count its logins.
func countingProviders(reg providers.Registry, n *atomic.Int32) providers.Registry {
	out := providers.Registry{}
	for name, r := range reg {
		r.Provider = countedProvider{inner: r.Provider, n: n}
		out[name] = r
	}
	return out
}

type countedProvider struct {
	inner providers.Provider
	n     *atomic.Int32
}

func (p countedProvider) Login(ctx context.Context, endpoint string, creds providers.Credentials) (*providers.Token, error) {
	p.n.Add(1)
	return p.inner.Login(ctx, endpoint, creds)
}

// Validate keeps the precheck of the wrapped provider.
func (p countedProvider) Validate(creds providers.Credentials) error {
	if v, ok := p.inner.(providers.Validator); ok {
		return v.Validate(creds)
	}
	return nil
}
