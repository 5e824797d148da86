package chart

import (
	"context"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestManagerWithChartRBAC runs the manager as the chart's ServiceAccount
// with only the chart's RBAC, with the args and env of the chart's
// Deployment (leader election in the release's namespace, its fingerprint
// key there too), on an API server with OwnerReferencesPermissionEnforcement
// (the target Secret's blockOwnerDeletion needs update on
// tokenrequests/finalizers): a TokenRequest becomes Ready, cluster-wide and
// with watchNamespaces. The two run one after the other: both would
// reconcile the watched namespaces' TokenRequests. The second has a
// leaderElection.id of its own, as a second release would.
func TestManagerWithChartRBAC(t *testing.T) {
	t.Run("cluster-wide", func(t *testing.T) {
		fake := providertest.Start(t)
		startChartManager(t, "tokensync", releaseNamespace, loopbackValues(t, map[string]any{}))
		e := newTenant(t, "tenant-cluster-wide", fake)
		e.createTokenRequest("partner", partnerCreds)
		tr := e.waitCondition("partner", metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued)
		checkOwnedSecret(t, tr)
		checkLease(t, releaseNamespace, "tokensync.tokensync.io")
	})

	t.Run("watchNamespaces", func(t *testing.T) {
		const release, namespace = "shard", "shard-system"
		fake := providertest.Start(t)
		m := startChartManager(t, release, namespace, loopbackValues(t, map[string]any{
			"watchNamespaces": []any{"team-a", "team-b"},
			"leaderElection":  map[string]any{"id": "shard.tokensync.io"},
		}))
		outside := newTenant(t, "team-c", fake)
		outside.createTokenRequest("partner", partnerCreds)
		for _, ns := range []string{"team-a", "team-b"} {
			e := newTenant(t, ns, fake)
			e.createTokenRequest("partner", partnerCreds)
			checkOwnedSecret(t, e.waitCondition("partner", metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued))
		}
		checkLease(t, namespace, "shard.tokensync.io")
		// Not watched, and out of reach: the ServiceAccount may read no
		// Secret but in the watched namespaces (and its key in its own).
		tr := &tokensyncv1alpha1.TokenRequest{}
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: "team-c", Name: "partner"}, tr); err != nil {
			t.Fatal(err)
		}
		if len(tr.Status.Conditions) != 0 {
			t.Errorf("a TokenRequest in an unwatched namespace has conditions %+v", tr.Status.Conditions)
		}
		user := "system:serviceaccount:" + namespace + ":" + m.serviceAccount
		for _, ns := range []string{"team-c", ""} {
			for _, verb := range []string{"get", "list", "create"} {
				if allowed(t, user, ns, verb, "secrets") {
					t.Errorf("%s may %s Secrets in namespace %q", user, verb, ns)
				}
			}
		}
		if !allowed(t, user, "team-a", "list", "secrets") {
			t.Errorf("%s may not list Secrets in team-a", user)
		}
	})
}

// checkOwnedSecret: the target Secret is controlled by the TokenRequest
// with blockOwnerDeletion, which the hardened API server let through.
func checkOwnedSecret(t *testing.T, tr *tokensyncv1alpha1.TokenRequest) {
	t.Helper()
	s := &metav1.PartialObjectMetadata{}
	s.SetGroupVersionKind(schemaSecret)
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: tr.Namespace, Name: tr.Status.SecretName}, s); err != nil {
		t.Fatalf("the target Secret: %v", err)
	}
	refs := s.GetOwnerReferences()
	if len(refs) != 1 || refs[0].UID != tr.UID || refs[0].BlockOwnerDeletion == nil || !*refs[0].BlockOwnerDeletion {
		t.Errorf("the target Secret's owner references %+v, want the TokenRequest as controller with blockOwnerDeletion", refs)
	}
}

// checkLease: a manager holds the leader election Lease name (the chart's
// leaderElection.id) in namespace.
func checkLease(t *testing.T, namespace, name string) {
	t.Helper()
	eventually(t, readyTimeout, func() error {
		lease := &metav1.PartialObjectMetadata{}
		lease.SetGroupVersionKind(schemaLease)
		return k8sClient.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: name}, lease)
	})
}

// allowed asks the API server whether user may verb resource in namespace.
func allowed(t *testing.T, user, namespace, verb, resource string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Verb: verb, Resource: resource,
		},
	}}
	if err := k8sClient.Create(context.Background(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}
