package cli

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestStatusAgainstTheOperator: status of a Ready, a failing and a
// suspended TokenRequest, and of a ClusterTokenRequest with a failed
// namespace, as the operator left them: the list and the detail, golden
// with times and addresses normalised.
func TestStatusAgainstTheOperator(t *testing.T) {
	ns := newNamespace(t, "status")
	fake := providertest.Start(t)
	partner := credsFor(t, providertest.Partner)
	wrong := credsFor(t, providertest.AML)
	fake.SetValid(providertest.AML, map[string]string{"email": "someone@example.com", "password": "right"})
	createCredentials(t, ns, "partner-credentials", partner)
	createCredentials(t, ns, "aml-credentials", wrong)
	createTokenRequest(t, ns, "partner-token", providertest.Partner, fake.URL(), "partner-credentials")
	createTokenRequest(t, ns, "aml-token", providertest.AML, fake.URL(), "aml-credentials")
	createTokenRequest(t, ns, "paused-token", providertest.Partner, fake.URL(), "partner-credentials", suspended)
	waitReady(t, ns, "partner-token", metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued)
	waitReady(t, ns, "aml-token", metav1.ConditionFalse, tokensyncv1alpha1.ReasonAuthenticationFailed)
	waitReady(t, ns, "paused-token", metav1.ConditionFalse, tokensyncv1alpha1.ReasonSuspended)
	waitEvents(t, tokenRequest(t, ns, "partner-token"), 1)
	waitEvents(t, tokenRequest(t, ns, "aml-token"), 1)

	list := plugin(t, adminKubeconfig, "status", "-n", ns)
	wantExit(t, list, 0)
	golden(t, "envtest/status", normalise(list.stdout))

	wide := plugin(t, adminKubeconfig, "status", "-n", ns, "-o", "wide")
	wantExit(t, wide, 0)
	golden(t, "envtest/status-wide", normalise(wide.stdout))

	detail := plugin(t, adminKubeconfig, "status", "partner-token", "aml-token", "-n", ns)
	wantExit(t, detail, 0)
	golden(t, "envtest/status-detail", normalise(detail.stdout))

	all := plugin(t, adminKubeconfig, "status", "-A", "-l", "!nothing")
	wantExit(t, all, 0)
	wantIn(t, "status -A", all.stdout, "NAMESPACE", ns+" ", "partner-token")

	asJSON := plugin(t, adminKubeconfig, "status", "partner-token", "-n", ns, "-o", "json")
	wantExit(t, asJSON, 0)
	wantIn(t, "status -o json", asJSON.stdout, `"kind": "TokenRequest"`, `"apiVersion": "tokensync.io/v1alpha1"`, `"secretName": "partner-token"`)

	missing := plugin(t, adminKubeconfig, "status", "no-such-token", "-n", ns)
	wantExit(t, missing, 1)
	wantIn(t, "status of a missing TokenRequest", missing.stderr, "TokenRequest "+ns+"/no-such-token not found")

	t.Run("ClusterTokenRequest", func(t *testing.T) {
		written, conflicting := newNamespace(t, "status-written"), newNamespace(t, "status-conflict")
		// A Secret of the same name that tokensync did not write: the
		// namespace fails with SecretConflict.
		foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shared-token", Namespace: conflicting}, StringData: map[string]string{"x": "y"}}
		if err := k8sClient.Create(context.Background(), foreign); err != nil {
			t.Fatal(err)
		}
		createCredentials(t, operatorNamespace, "status-shared-credentials", partner)
		ctr := &tokensyncv1alpha1.ClusterTokenRequest{
			ObjectMeta: metav1.ObjectMeta{Name: "status-shared", Labels: map[string]string{"test": "status"}},
			Spec: tokensyncv1alpha1.ClusterTokenRequestSpec{
				LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: providertest.Partner, Endpoint: fake.URL()},
				CredentialsSecretRef: tokensyncv1alpha1.NamespacedSecretReference{Namespace: operatorNamespace, Name: "status-shared-credentials"},
				SecretName:           "shared-token",
				Namespaces:           []string{written, conflicting},
			},
		}
		if err := k8sClient.Create(context.Background(), ctr); err != nil {
			t.Fatal(err)
		}
		eventually(t, readyTimeout, func() error {
			got := &tokensyncv1alpha1.ClusterTokenRequest{}
			if err := k8sClient.Get(context.Background(), types.NamespacedName{Name: ctr.Name}, got); err != nil {
				return err
			}
			c := meta.FindStatusCondition(got.Status.Conditions, tokensyncv1alpha1.ConditionReady)
			if c == nil || got.Status.Namespaces.Written != 1 || len(got.Status.FailedNamespaces) != 1 {
				return fmt.Errorf("status %+v", got.Status)
			}
			ctr = got
			return nil
		})
		waitEvents(t, ctr, 2)

		list := plugin(t, adminKubeconfig, "status", "--cluster", "-l", "test=status")
		wantExit(t, list, 0)
		golden(t, "envtest/status-cluster", normalise(list.stdout))

		detail := plugin(t, adminKubeconfig, "status", "--cluster", "status-shared")
		wantExit(t, detail, 0)
		golden(t, "envtest/status-cluster-detail", normalise(detail.stdout))

		// renew --cluster: a new token, written where it can be.
		renew := plugin(t, adminKubeconfig, "renew", "--cluster", "status-shared", "--wait")
		wantExit(t, renew, 0)
		wantIn(t, "renew --cluster --wait", renew.stdout,
			"Requested a new token for ClusterTokenRequest status-shared\n",
			"ClusterTokenRequest status-shared has a new token, which expires in ",
			"; but it is not written in 1 of 2 namespaces (status --cluster status-shared says why)\n")
	})
}

// waitEvents waits until n events about obj are listed: the operator
// records them asynchronously (those about a cluster-scoped object in
// namespace default).
func waitEvents(t *testing.T, obj client.Object, n int) {
	t.Helper()
	ns := obj.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	eventually(t, readyTimeout, func() error {
		list := &corev1.EventList{}
		if err := k8sClient.List(context.Background(), list, client.InNamespace(ns), client.MatchingFields{"involvedObject.uid": string(obj.GetUID())}); err != nil {
			return err
		}
		if len(list.Items) < n {
			return fmt.Errorf("%d events about %s, want %d", len(list.Items), obj.GetName(), n)
		}
		return nil
	})
}
