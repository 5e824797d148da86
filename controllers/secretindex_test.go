package controllers

import (
	"testing"

	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

func TestSecretIndexFollowsTokenRequests(t *testing.T) {
	tr := func(ns, name, credentials, target string) *tokensyncv1alpha1.TokenRequest {
		o := &tokensyncv1alpha1.TokenRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		o.Spec.CredentialsSecretRef.Name = credentials
		o.Spec.SecretName = target
		return o
	}
	users := func(x *secretIndex, role secretRole, ns, secret string) []string {
		var names []string
		for _, r := range x.requests(role, types.NamespacedName{Namespace: ns, Name: secret}) {
			if r.Namespace != ns {
				t.Errorf("request %v for a Secret in %q", r, ns)
			}
			names = append(names, r.Name)
		}
		return names
	}
	x := newSecretIndex()
	h := x.handler()
	a, b := tr("ns1", "a", "shared", "token-a"), tr("ns1", "b", "shared", "token-b")
	other := tr("ns2", "a", "shared", "token-a")
	h.OnAdd(a, true)
	h.OnAdd(b, true)
	h.OnAdd(other, true)
	h.OnAdd(a, false) // a relist: no duplicate

	check := func(step string, role secretRole, ns, secret string, want ...string) {
		t.Helper()
		if got := users(x, role, ns, secret); !slices.Equal(got, want) {
			t.Errorf("%s: users of %s/%s: %q, want %q", step, ns, secret, got, want)
		}
	}
	check("added", credentialsRole, "ns1", "shared", "a", "b")
	check("added", credentialsRole, "ns2", "shared", "a")
	check("added", targetRole, "ns1", "token-a", "a")
	check("added", targetRole, "ns1", "shared")
	check("added", credentialsRole, "ns1", "token-a")

	// A spec edit moves a TokenRequest to other Secrets.
	a2 := tr("ns1", "a", "own", "token-a2")
	h.OnUpdate(a, a2)
	check("updated", credentialsRole, "ns1", "shared", "b")
	check("updated", credentialsRole, "ns1", "own", "a")
	check("updated", targetRole, "ns1", "token-a")
	check("updated", targetRole, "ns1", "token-a2", "a")

	// A status write changes nothing indexed.
	a3 := a2.DeepCopy()
	a3.Status.ObservedGeneration = 7
	h.OnUpdate(a2, a3)
	check("status write", credentialsRole, "ns1", "own", "a")

	h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "ns1/b", Obj: b})
	h.OnDelete(a3)
	check("deleted", credentialsRole, "ns1", "shared")
	check("deleted", credentialsRole, "ns1", "own")
	check("deleted", targetRole, "ns1", "token-a2")
	check("deleted", credentialsRole, "ns2", "shared", "a")
	for role, m := range x.users {
		for s, names := range m {
			if s.Namespace == "ns1" {
				t.Errorf("role %d: %v still maps to %v", role, s, names)
			}
		}
	}
	if got := x.requests(targetRole, types.NamespacedName{Namespace: "ns9", Name: "x"}); len(got) != 0 {
		t.Errorf("unknown Secret: %v", got)
	}
}
