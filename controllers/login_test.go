package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestCredentialsLabelRequired: a TokenRequest naming a credentials Secret
// that is not labelled tokensync.io/credentials: "true" sends nothing and
// says so; the label makes it Ready within seconds; removing the label later
// stops the next login, never the token already stored.
func TestCredentialsLabelRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fake.SetValid(providertest.Partner, partnerCreds)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-password", Namespace: e.ns}, StringData: partnerCreds}
	if err := k8sClient.Create(e.ctx(), s); err != nil {
		t.Fatal(err)
	}
	e.createTokenRequest("tr", providertest.Partner, "db-password")
	tr := e.waitCondition("tr", metav1.ConditionFalse, tokensyncv1alpha1.ReasonCredentialsNotAllowed)
	c := readyCondition(tr)
	if !hasSubstrings(c.Message, `"db-password"`, tokensyncv1alpha1.LabelCredentials) {
		t.Errorf("message %q does not name the Secret and the label", c.Message)
	}
	if !meta.IsStatusConditionTrue(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled) {
		t.Error("not Stalled: a person must label the Secret")
	}
	e.waitEvent("tr", "Warning/"+tokensyncv1alpha1.ReasonCredentialsNotAllowed)
	if n := e.fake.Attempts(providertest.Partner); n != 0 {
		t.Fatalf("%d requests sent with an unlabelled Secret", n)
	}

	labelled := time.Now()
	e.label("db-password", map[string]string{tokensyncv1alpha1.LabelCredentials: "true"})
	e.waitReady("tr")
	if took := time.Since(labelled); took > 20*time.Second {
		t.Errorf("Ready %s after the label, want within seconds", took.Round(time.Second))
	}
	token := e.token("tr")

	// The label removed: the stored token stays; the next login is refused.
	e.label("db-password", map[string]string{tokensyncv1alpha1.LabelCredentials: ""})
	e.forceRefresh("tr", "1")
	tr = e.waitCondition("tr", metav1.ConditionFalse, tokensyncv1alpha1.ReasonCredentialsNotAllowed)
	if !hasSubstrings(readyCondition(tr).Message, "stays valid until") {
		t.Errorf("message %q does not say the stored token stays valid", readyCondition(tr).Message)
	}
	if got := e.token("tr"); got != token {
		t.Error("the stored token was touched when the label was removed")
	}
	if n := e.fake.Attempts(providertest.Partner); n != 1 {
		t.Errorf("%d requests, want the one made while labelled", n)
	}
}

// TestCredentialsLabelNotRequired: with the rule off
// (--require-credentials-label=false) any Secret of the namespace serves.
func TestCredentialsLabelNotRequired(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) { r.AllowUnlabelledCredentials = true })
	e.fake.SetValid(providertest.Partner, partnerCreds)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: e.ns}, StringData: partnerCreds}
	if err := k8sClient.Create(e.ctx(), s); err != nil {
		t.Fatal(err)
	}
	e.createTokenRequest("tr", providertest.Partner, "creds")
	e.waitReady("tr")
}

// label sets (or, with an empty value, removes) labels of a Secret.
func (e *env) label(name string, labels map[string]string) {
	e.t.Helper()
	eventually(e.t, readyTimeout, func() error {
		s := &corev1.Secret{}
		if err := k8sClient.Get(e.ctx(), types.NamespacedName{Namespace: e.ns, Name: name}, s); err != nil {
			return err
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		for k, v := range labels {
			if v == "" {
				delete(s.Labels, k)
			} else {
				s.Labels[k] = v
			}
		}
		return k8sClient.Update(e.ctx(), s)
	})
}

// TestOutageEndingBeforeExpiry: a provider outage (HTTP 503) that ends 4 s
// before the token expires leaves no expired token in the Secret: the last
// retry of the fast class starts at least a second before expiry, whatever the backoff.
func TestOutageEndingBeforeExpiry(t *testing.T) {
	t.Parallel()
	const lifetime = 30 * time.Second
	e := newEnv(t, providertest.WithLifetime(providertest.Partner, lifetime))
	e.fake.SetValid(providertest.Partner, partnerCreds)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("tr", providertest.Partner, "creds")
	e.waitReady("tr")
	// The outage starts now, before the refresh of the token the Secret
	// holds, and ends 4 s before that token expires.
	e.fake.FailEvery(providertest.Partner, 1, providertest.Failure{Status: 503})
	s, err := e.secret("tr")
	if err != nil {
		t.Fatal(err)
	}
	expiry, err := time.Parse(time.RFC3339, string(s.Data[tokensyncv1alpha1.SecretKeyExpiresAt]))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(time.Until(expiry.Add(-4 * time.Second)))
		e.fake.FailEvery(providertest.Partner, 0, providertest.Failure{})
	}()
	// Until well after the old expiry, the Secret never holds an expired token.
	deadline := expiry.Add(5 * time.Second)
	for time.Now().Before(deadline) {
		asked := time.Now()
		s, err := e.secret("tr")
		if err != nil {
			t.Fatal(err)
		}
		exp, err := time.Parse(time.RFC3339, string(s.Data[tokensyncv1alpha1.SecretKeyExpiresAt]))
		if err != nil {
			t.Fatal(err)
		}
		if !asked.Before(exp) {
			t.Fatalf("at %s the Secret held a token that expired at %s (failed attempts %d)", asked.Format(time.RFC3339Nano), exp, e.tokenRequest("tr").Status.FailedAttempts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if e.fake.Attempts(providertest.Partner) < 3 {
		t.Errorf("%d attempts: the outage was not crossed", e.fake.Attempts(providertest.Partner))
	}
}

func hasSubstrings(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
