package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// namespaceListBreaker is the ClusterTokenRequest reconciler's client, with
// its List of namespaces failing while failing is set, its deletions of
// Secrets counted, and its reads of ClusterTokenRequests (one a reconcile).
type namespaceListBreaker struct {
	client.Client
	failing       atomic.Bool
	failedLists   atomic.Int64
	secretDeletes atomic.Int64
	reads         atomic.Int64
}

func (c *namespaceListBreaker) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*tokensyncv1alpha1.ClusterTokenRequest); ok {
		c.reads.Add(1)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *namespaceListBreaker) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if c.failing.Load() && isNamespaceList(list) {
		c.failedLists.Add(1)
		return apierrors.NewServiceUnavailable("the API server is restarting")
	}
	return c.Client.List(ctx, list, opts...)
}

func (c *namespaceListBreaker) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if isSecret(obj) {
		c.secretDeletes.Add(1)
	}
	return c.Client.Delete(ctx, obj, opts...)
}

func isNamespaceList(list client.ObjectList) bool {
	switch l := list.(type) {
	case *corev1.NamespaceList:
		return true
	case *metav1.PartialObjectMetadataList:
		return l.GetObjectKind().GroupVersionKind().Kind == "NamespaceList"
	}
	return false
}

func isSecret(obj client.Object) bool {
	switch o := obj.(type) {
	case *corev1.Secret:
		return true
	case *metav1.PartialObjectMetadata:
		return o.GetObjectKind().GroupVersionKind().Kind == "Secret"
	}
	return false
}

// copies records what each of a ClusterTokenRequest's copies is: its UID
// and resourceVersion, by namespace.
type copies map[string]string

func (c *clusterEnv) copies(t *testing.T) copies {
	t.Helper()
	out := copies{}
	for i, ns := range c.namespaces {
		if tok, s := c.token(i); s != nil {
			if tok == "" {
				t.Fatalf("namespace %s: a copy without a token", ns)
			}
			out[ns] = fmt.Sprintf("%s@%s", s.UID, s.ResourceVersion)
		}
	}
	return out
}

// unchanged fails unless every copy of want is still there, not
// re-created and not rewritten.
func (c *clusterEnv) unchanged(t *testing.T, want copies) {
	t.Helper()
	got := c.copies(t)
	for ns, v := range want {
		if got[ns] != v {
			t.Errorf("namespace %s: copy %q, want %q kept as it was", ns, got[ns], v)
		}
	}
}

// TestAnErrorNeverDeletes: a ClusterTokenRequest's copy is deleted only
// when its namespace was evaluated and does not match. A selector admission
// lets through but the operator cannot evaluate (a label key that is not
// one) is Ready=False, Stalled, InvalidNamespaceSelector, with every copy
// left in place (those named in spec.namespaces and those of a namespace
// that stopped matching meanwhile too); a failed namespace list is retried
// with every copy left in place. Not parallel: its manager serves every
// ClusterTokenRequest, as TestClusterTokenRequest's does, and
// the serial phase keeps the two apart.
func TestAnErrorNeverDeletes(t *testing.T) {
	c := &clusterEnv{t: t, fake: providertest.Start(t), credsNS: newNamespace(t)}
	c.label = "tokensync-test/" + c.credsNS
	for range 3 {
		c.namespaces = append(c.namespaces, newNamespace(t))
	}
	c.fake.SetValid(providertest.Partner, partnerCreds)
	breaker := &namespaceListBreaker{}
	_, _, c.stop = startManager(t, managerOptions{namespaces: append([]string{c.credsNS}, c.namespaces...), clusterOnly: true,
		tune: func(r *TokenRequestReconciler) { breaker.Client = r.Client; r.Client = breaker }})
	c.createCredentials("platform-partner", true)
	// Namespaces 0 and 1 by the selector, namespace 2 by name.
	c.selectNS(0, true)
	c.selectNS(1, true)
	byName := func(ctr *tokensyncv1alpha1.ClusterTokenRequest) { ctr.Spec.Namespaces = []string{c.namespaces[2]} }

	t.Run("a selector that cannot be evaluated keeps every copy", func(t *testing.T) {
		c.create("unevaluable", "platform-partner", byName)
		c.waitFor("unevaluable", written(3, 3))
		before := c.copies(t)
		if len(before) != 3 || c.fake.Logins(providertest.Partner) != 1 {
			t.Fatalf("copies %v after %d logins, want 3 after 1", before, c.fake.Logins(providertest.Partner))
		}
		deletes := breaker.secretDeletes.Load()

		// Admitted (CEL does not judge label keys), not evaluable.
		patchCluster(t, "unevaluable", func(ctr *tokensyncv1alpha1.ClusterTokenRequest) {
			ctr.Spec.NamespaceSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "bad key!", Operator: metav1.LabelSelectorOpExists}}
		})
		if _, err := metav1.LabelSelectorAsSelector(c.get("unevaluable").Spec.NamespaceSelector); err == nil {
			t.Fatal("the selector evaluates: the test tests nothing")
		}
		stalled := c.waitFor("unevaluable", invalidSelector)
		if ready := meta.FindStatusCondition(stalled.Status.Conditions, tokensyncv1alpha1.ConditionReady); !strings.Contains(ready.Message, "bad key!") ||
			!strings.Contains(ready.Message, "no Secret is written or deleted") {
			t.Errorf("Ready message %q does not say what to fix and that nothing was deleted", ready.Message)
		}
		if got := c.kstatus("unevaluable"); got != kstatusFailed {
			t.Errorf("kstatus %s, want Failed", got)
		}
		c.unchanged(t, before)

		// A namespace that stops matching while the selector cannot be
		// evaluated: it is not evaluated, so its copy stays. Its event
		// and the next namespace's reconcile the ClusterTokenRequest again
		// (no other event does: its status is not a change of spec).
		reads := breaker.reads.Load()
		c.selectNS(1, false)
		patchNamespaceLabel(t, c.namespaces[2], "touched", "yes")
		eventually(t, readyTimeout, func() error {
			if breaker.reads.Load() == reads {
				return errors.New("not reconciled after the namespaces changed")
			}
			return nil
		})
		c.waitFor("unevaluable", invalidSelector)
		c.unchanged(t, before)
		if n := breaker.secretDeletes.Load() - deletes; n != 0 {
			t.Errorf("%d Secrets deleted while the selector could not be evaluated", n)
		}
		if n := c.fake.Logins(providertest.Partner); n != 1 {
			t.Errorf("%d logins, want still 1", n)
		}

		// Fixed: namespace 1 is evaluated, does not match, loses its copy.
		patchCluster(t, "unevaluable", func(ctr *tokensyncv1alpha1.ClusterTokenRequest) {
			ctr.Spec.NamespaceSelector.MatchExpressions = nil
		})
		c.waitFor("unevaluable", written(2, 2))
		eventually(t, readyTimeout, func() error {
			if _, s := c.token(1); s != nil {
				return errors.New("namespace 1 no longer matches and still has its copy")
			}
			return nil
		})
		ctr := c.get("unevaluable")
		if meta.FindStatusCondition(ctr.Status.Conditions, tokensyncv1alpha1.ConditionStalled) != nil {
			t.Errorf("still Stalled after the fix: %+v", ctr.Status.Conditions)
		}
		for _, i := range []int{0, 2} {
			if _, s := c.token(i); s == nil || before[c.namespaces[i]] != fmt.Sprintf("%s@%s", s.UID, s.ResourceVersion) {
				t.Errorf("namespace %d: its copy was replaced or rewritten", i)
			}
		}
		if n := c.fake.Logins(providertest.Partner); n != 1 {
			t.Errorf("%d logins, want still 1", n)
		}
		c.selectNS(1, true)
		c.waitFor("unevaluable", written(3, 3))
		if err := k8sClient.Delete(c.ctx(), c.get("unevaluable")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a failed namespace list is retried and keeps every copy", func(t *testing.T) {
		c.create("unlisted", "platform-partner", byName, func(ctr *tokensyncv1alpha1.ClusterTokenRequest) { ctr.Spec.SecretName = "listed-token" })
		c.waitFor("unlisted", written(3, 3))
		before := map[string]string{}
		for _, ns := range c.namespaces {
			s := &corev1.Secret{}
			if err := k8sClient.Get(c.ctx(), types.NamespacedName{Namespace: ns, Name: "listed-token"}, s); err != nil {
				t.Fatal(err)
			}
			before[ns] = fmt.Sprintf("%s@%s", s.UID, s.ResourceVersion)
		}
		logins, deletes := c.fake.Logins(providertest.Partner), breaker.secretDeletes.Load()

		breaker.failing.Store(true)
		// Namespace 1 stops matching while no namespace can be listed: the
		// reconcile it starts fails, and is retried on the controller's
		// backoff; every copy stays as it was all along.
		c.selectNS(1, false)
		eventually(t, readyTimeout, func() error {
			for ns, v := range before {
				s := &corev1.Secret{}
				if err := k8sClient.Get(c.ctx(), types.NamespacedName{Namespace: ns, Name: "listed-token"}, s); err != nil {
					t.Fatalf("namespace %s: %v", ns, err)
				} else if got := fmt.Sprintf("%s@%s", s.UID, s.ResourceVersion); got != v {
					t.Fatalf("namespace %s: copy %s, want %s kept as it was", ns, got, v)
				}
			}
			if n := breaker.secretDeletes.Load() - deletes; n != 0 {
				t.Fatalf("%d Secrets deleted while namespaces could not be listed", n)
			}
			if n := breaker.failedLists.Load(); n < 3 {
				return fmt.Errorf("%d namespace lists failed, want the reconcile retried (3)", n)
			}
			return nil
		})

		// Listed again: namespace 1 is evaluated, does not match, loses it.
		breaker.failing.Store(false)
		c.waitFor("unlisted", written(2, 2))
		eventually(t, readyTimeout, func() error {
			err := k8sClient.Get(c.ctx(), types.NamespacedName{Namespace: c.namespaces[1], Name: "listed-token"}, &corev1.Secret{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("namespace 1's copy: %v, want deleted", err)
			}
			return nil
		})
		if n := c.fake.Logins(providertest.Partner); n != logins {
			t.Errorf("%d logins, want %d", n, logins)
		}
	})
}

// invalidSelector checks Ready=False and Stalled=True, reason
// InvalidNamespaceSelector, for the current generation.
func invalidSelector(ctr *tokensyncv1alpha1.ClusterTokenRequest) error {
	for _, typ := range []string{tokensyncv1alpha1.ConditionReady, tokensyncv1alpha1.ConditionStalled} {
		want := metav1.ConditionTrue
		if typ == tokensyncv1alpha1.ConditionReady {
			want = metav1.ConditionFalse
		}
		c := meta.FindStatusCondition(ctr.Status.Conditions, typ)
		if c == nil || c.Status != want || c.Reason != tokensyncv1alpha1.ReasonInvalidNamespaceSelector || c.ObservedGeneration != ctr.Generation {
			return fmt.Errorf("%s %+v, want %s InvalidNamespaceSelector for generation %d", typ, c, want, ctr.Generation)
		}
	}
	return nil
}

// patchNamespaceLabel sets a label on a namespace.
func patchNamespaceLabel(t *testing.T, name, key, value string) {
	t.Helper()
	eventually(t, readyTimeout, func() error {
		ns := &corev1.Namespace{}
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Name: name}, ns); err != nil {
			return err
		}
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[key] = value
		return k8sClient.Update(context.Background(), ns)
	})
}
