package chart

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/internal/cabundle/cabundletest"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestManagerTrustsTheCABundle runs the manager as the chart deploys it
// with caBundle, its volume filled and updated as the kubelet does, against
// a provider whose certificate a private CA signed: a TokenRequest is
// refused while the ConfigMap holds another CA, and Ready once it holds the
// provider's; when the provider's certificate and the ConfigMap change to a
// new CA, the next login trusts it, in the same manager process.
//
// No wait on the bundle's CheckInterval (5 s): each login here comes at
// least --min-login-interval (10 s) after the one before, whose look at
// the file is the last, so the first login after a change reads it.
func TestManagerTrustsTheCABundle(t *testing.T) {
	const release, namespace, tenantNamespace = "ca-bundle", "ca-bundle-system", "tenant-ca-bundle"
	ctx := context.Background()
	other, first, second := cabundletest.NewCA(t, "other"), cabundletest.NewCA(t, "first"), cabundletest.NewCA(t, "second")
	fake := providertest.New()
	t.Cleanup(fake.Close)
	provider := cabundletest.StartServer(t, first, fake.Handler())

	createNamespace(t, namespace)
	bundle := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "corp-ca", Namespace: namespace},
		Data:       map[string]string{"root.pem": string(other.PEM)},
	}
	if err := k8sClient.Create(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	m := startChartManager(t, release, namespace, loopbackValues(t, map[string]any{
		"caBundle":        map[string]any{"configMap": map[string]any{"name": "corp-ca", "key": "root.pem"}},
		"watchNamespaces": []any{tenantNamespace},
		"leaderElection":  map[string]any{"id": "ca-bundle.tokensync.io"},
	}))
	// The ConfigMap changes, and the kubelet brings it into the pod.
	setBundle := func(ca *cabundletest.CA) {
		t.Helper()
		bundle.Data["root.pem"] = string(ca.PEM)
		if err := k8sClient.Update(ctx, bundle); err != nil {
			t.Fatal(err)
		}
		m.syncVolumes(t)
	}
	e := newTenant(t, tenantNamespace, fake)
	e.endpoint = provider.URL
	forceRefresh := func(value string) {
		t.Helper()
		eventually(t, readyTimeout, func() error {
			tr := &tokensyncv1alpha1.TokenRequest{}
			if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: tenantNamespace, Name: "partner"}, tr); err != nil {
				return err
			}
			metav1.SetMetaDataAnnotation(&tr.ObjectMeta, tokensyncv1alpha1.AnnotationForceRefresh, value)
			return k8sClient.Update(ctx, tr)
		})
	}
	// storedToken is the token in the TokenRequest's Secret once the
	// force-refresh value is honoured and the TokenRequest is Ready.
	storedToken := func(forced string) string {
		t.Helper()
		var token string
		eventually(t, readyTimeout, func() error {
			tr := &tokensyncv1alpha1.TokenRequest{}
			if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: tenantNamespace, Name: "partner"}, tr); err != nil {
				return err
			}
			ready := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionReady)
			if tr.Status.LastForceRefresh != forced || ready == nil || ready.Status != metav1.ConditionTrue {
				return fmt.Errorf("force-refresh %q honoured: %q; Ready: %+v", forced, tr.Status.LastForceRefresh, ready)
			}
			s := &corev1.Secret{}
			if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: tenantNamespace, Name: tr.Status.SecretName}, s); err != nil {
				return err
			}
			token = string(s.Data[tokensyncv1alpha1.SecretKeyToken])
			return nil
		})
		return token
	}

	e.createTokenRequest("partner", partnerCreds)
	tr := e.waitCondition("partner", metav1.ConditionFalse, tokensyncv1alpha1.ReasonProviderUnavailable)
	if ready := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionReady); !strings.Contains(ready.Message, "certificate could not be verified") {
		t.Fatalf("Ready message %q, want the certificate refused", ready.Message)
	}
	if n := fake.Logins(providertest.Partner); n != 0 {
		t.Fatalf("%d logins reached the provider through a connection it did not verify", n)
	}

	setBundle(first)
	forceRefresh("1")
	token := storedToken("1")
	if token == "" || token != fake.LastToken(providertest.Partner) {
		t.Fatalf("the Secret's token is not the provider's last")
	}

	provider.ServeCertificateOf(t, second)
	setBundle(second)
	forceRefresh("2")
	if renewed := storedToken("2"); renewed == token || renewed != fake.LastToken(providertest.Partner) {
		t.Errorf("after the CA changed, the Secret's token is not a new one from the provider")
	}
	logs, err := os.ReadFile(m.logs.Name())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logs), "The CA bundle changed: the next connections to providers trust its new certificates"); n != 2 {
		t.Errorf("the manager logged %d changes of the CA bundle, want 2", n)
	}
}
