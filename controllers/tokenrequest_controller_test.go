package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestEachProviderEndToEnd: TokenRequest and credentials applied → target
// Secret with the right keys, labels, annotations and owner reference; status right.
func TestEachProviderEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		provider string
		creds    map[string]string
		keys     []string
	}{
		{providertest.AML, map[string]string{"email": "ops@example.com", "password": "correct-horse"}, []string{"token", "expiresAt"}},
		{providertest.Partner, map[string]string{"accessKey": "986d8167a9b9", "secret": "79bPqahzbeYu"}, []string{"token", "expiresAt"}},
		{providertest.AmpliFi, map[string]string{"credentials.json": `{"channel":"test","deviceTag":"my_deviceTag","deviceData":{"platform":"test"}}`}, []string{"token", "expiresAt", "userId"}},
	}
	for _, c := range cases {
		e.createSecret(c.provider+"-creds", c.creds)
		e.createTokenRequest(c.provider, c.provider, c.provider+"-creds", func(tr *tokensyncv1alpha1.TokenRequest) {
			tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{
				Labels:      map[string]tokensyncv1alpha1.LabelValue{"team": "payments"},
				Annotations: map[string]string{"example.com/owner": "payments"},
			}
		})
	}
	for _, c := range cases {
		t.Run(c.provider, func(t *testing.T) {
			tr := e.waitReady(c.provider)
			s, err := e.secret(c.provider)
			if err != nil {
				t.Fatal(err)
			}
			if s.Type != corev1.SecretTypeOpaque {
				t.Errorf("type %s, want Opaque", s.Type)
			}
			for _, k := range c.keys {
				if len(s.Data[k]) == 0 {
					t.Errorf("Secret lacks key %q (has %v)", k, keys(s.Data))
				}
			}
			if got := string(s.Data["token"]); got != e.fake.LastToken(c.provider) {
				t.Errorf("token is not the one the provider issued")
			}
			exp, err := time.Parse(time.RFC3339, string(s.Data["expiresAt"]))
			if err != nil || exp.Location() != time.UTC || !strings.HasSuffix(string(s.Data["expiresAt"]), "Z") {
				t.Errorf("expiresAt %q is not RFC 3339 UTC: %v", s.Data["expiresAt"], err)
			}
			if s.Labels["app.kubernetes.io/managed-by"] != "tokensync" || s.Labels["team"] != "payments" {
				t.Errorf("labels %v", s.Labels)
			}
			if s.Annotations["tokensync.io/expires-at"] != string(s.Data["expiresAt"]) ||
				s.Annotations["tokensync.io/provider"] != c.provider || s.Annotations["example.com/owner"] != "payments" {
				t.Errorf("annotations %v", s.Annotations)
			}
			if !ownerIsController(s, tr) {
				t.Errorf("Secret is not controlled by the TokenRequest (owner references %v): deleting the TokenRequest would not delete it", s.OwnerReferences)
			}
			st := tr.Status
			if st.SecretName != c.provider || st.FailedAttempts != 0 || st.ObservedGeneration != tr.Generation ||
				st.ExpiresAt == nil || !st.ExpiresAt.Time.Equal(exp) || st.LastRefreshTime == nil || st.NextRefreshTime == nil ||
				!st.NextRefreshTime.Time.After(st.LastRefreshTime.Time) || !st.NextRefreshTime.Time.Before(exp) {
				t.Errorf("status %+v", st)
			}
			if c := readyCondition(tr); c.ObservedGeneration != tr.Generation {
				t.Errorf("condition observedGeneration %d", c.ObservedGeneration)
			}
			checkPrinterColumns(t, e.ns, tr)
			if e.fake.Logins(c.provider) != 1 {
				t.Errorf("%d logins, want 1", e.fake.Logins(c.provider))
			}
		})
	}
	eventually(t, readyTimeout, func() error {
		evs := e.events("aml")
		for _, ev := range evs {
			if strings.HasPrefix(ev, "Normal/TokenRefreshed") {
				return nil
			}
		}
		return fmt.Errorf("no TokenRefreshed event: %v", evs)
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
