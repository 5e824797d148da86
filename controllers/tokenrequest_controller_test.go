package controllers

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

var partnerCreds = map[string]string{"accessKey": "ak-1", "secret": "s3cr3t-value"}

func withRefreshBefore(d time.Duration) func(*tokensyncv1alpha1.TokenRequest) {
	return func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.RefreshBefore = &metav1.Duration{Duration: d} }
}

// TestRefreshBeforeExpiry: with a short lifetime the Secret's token changes
// before the old one expires, exactly one login per lifetime, and the
// Secret never holds an expired token while the provider is healthy.
func TestRefreshBeforeExpiry(t *testing.T) {
	t.Parallel()
	const lifetime = 12 * time.Second
	e := newEnv(t, providertest.WithLifetime(providertest.Partner, lifetime))
	e.createSecret("creds", partnerCreds)
	// refreshBefore unset: the window (a third of the lifetime, 4s) is
	// spread over 3-5s before expiry, so each token serves over half its lifetime.
	e.createTokenRequest("short", providertest.Partner, "creds")
	e.waitReady("short")

	seen := map[string]time.Time{} // token -> first seen
	var order []string
	deadline := time.Now().Add(3*lifetime - 2*time.Second)
	for time.Now().Before(deadline) {
		s, err := e.secret("short")
		if err != nil {
			t.Fatal(err)
		}
		tok := string(s.Data["token"])
		exp, err := time.Parse(time.RFC3339, s.Annotations[tokensyncv1alpha1.AnnotationExpiresAt])
		if err != nil {
			t.Fatal(err)
		}
		if now := time.Now(); !now.Before(exp) {
			t.Fatalf("the Secret holds a token that expired at %s (now %s)", exp, now)
		}
		if _, ok := seen[tok]; !ok {
			seen[tok] = time.Now()
			order = append(order, tok)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logins := e.fake.Logins(providertest.Partner)
	if len(order) < 3 {
		t.Fatalf("saw %d tokens over %s of %s-lifetime tokens, want at least 3 (a refresh per lifetime)", len(order), 3*lifetime, lifetime)
	}
	if logins != len(order) && logins != len(order)+1 { // a refresh may land right after the last sample
		t.Fatalf("%d logins for %d tokens written: want exactly one login per token", logins, len(order))
	}
	for i := 1; i < len(order); i++ {
		if gap := seen[order[i]].Sub(seen[order[i-1]]); gap < lifetime/2-time.Second { // refresh times are whole seconds
			t.Errorf("token %d replaced after %s: more than one login per lifetime", i, gap)
		}
	}
}

// TestRestartCostsNoLogins: a new manager finds valid tokens and neither
// logs in nor writes.
func TestRestartCostsNoLogins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	for _, n := range []string{"a", "b", "c"} {
		e.createTokenRequest(n, providertest.Partner, "creds")
	}
	versions := map[string]string{}
	for _, n := range []string{"a", "b", "c"} {
		tr := e.waitReady(n)
		s, _ := e.secret(n)
		versions[n] = s.ResourceVersion + "/" + tr.ResourceVersion
	}
	before := e.fake.Logins(providertest.Partner)

	e.restart()
	// A new TokenRequest becoming Ready proves the new manager is working
	// through its queue, which started with the three existing ones.
	e.createTokenRequest("d", providertest.Partner, "creds")
	e.waitReady("d")
	time.Sleep(2 * time.Second)

	if got := e.fake.Logins(providertest.Partner) - before; got != 1 {
		t.Fatalf("%d logins after the restart, want 1 (only the new TokenRequest)", got)
	}
	for _, n := range []string{"a", "b", "c"} {
		tr := e.tokenRequest(n)
		s, _ := e.secret(n)
		if v := s.ResourceVersion + "/" + tr.ResourceVersion; v != versions[n] {
			t.Errorf("%s: Secret or status written after the restart (%s -> %s)", n, versions[n], v)
		}
	}
}

// TestProviderFailureKeepsToken: the provider fails for a while: the Secret
// keeps the old token, backoff bounds the attempts, Ready=False names the
// reason, and the TokenRequest recovers when the provider heals.
func TestProviderFailureKeepsToken(t *testing.T) {
	t.Parallel()
	const lifetime = 30 * time.Second
	e := newEnv(t, providertest.WithLifetime(providertest.Partner, lifetime))
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("flaky", providertest.Partner, "creds", withRefreshBefore(10*time.Second))
	e.waitReady("flaky")
	good := e.token("flaky")

	e.fake.FailEvery(providertest.Partner, 1, providertest.Failure{Status: http.StatusServiceUnavailable})
	attemptsBefore := e.fake.Attempts(providertest.Partner)
	tr := e.waitCondition("flaky", metav1.ConditionFalse, tokensyncv1alpha1.ReasonProviderUnavailable)
	failedAt := time.Now()
	if c := readyCondition(tr); !strings.Contains(c.Message, "stays valid until") {
		t.Errorf("message does not say the old token still works: %q", c.Message)
	}
	// Watch for 20s: the token stays; attempts follow the 5s, 10s, 20s backoff.
	consistently(t, 20*time.Second, func() error {
		if tok := e.token("flaky"); tok != good {
			return fmt.Errorf("the Secret's token changed during the outage")
		}
		return nil
	})
	window := time.Since(failedAt)
	attempts := e.fake.Attempts(providertest.Partner) - attemptsBefore
	// Shortest possible delays (25% jitter): 3.75s, 7.5s, 15s, ...
	maxAttempts := 1
	for d, elapsed := 3750*time.Millisecond, time.Duration(0); elapsed+d <= window; d *= 2 {
		elapsed += d
		maxAttempts++
	}
	if attempts < 2 || attempts > maxAttempts {
		t.Errorf("%d attempts in %s of outage, want 2..%d (backoff)", attempts, window.Round(time.Second), maxAttempts)
	}
	if tr := e.tokenRequest("flaky"); tr.Status.FailedAttempts < 2 {
		t.Errorf("failedAttempts %d, want it to count the failures", tr.Status.FailedAttempts)
	}
	e.waitEvent("flaky", "Warning/ProviderUnavailable")

	e.fake.FailEvery(providertest.Partner, 0, providertest.Failure{})
	tr = e.waitReady("flaky")
	if tr.Status.FailedAttempts != 0 || e.token("flaky") == good {
		t.Errorf("after healing: failedAttempts %d, token replaced %v", tr.Status.FailedAttempts, e.token("flaky") != good)
	}
}

func hasEvent(events []string, prefix string) bool {
	for _, ev := range events {
		if strings.HasPrefix(ev, prefix) {
			return true
		}
	}
	return false
}

// TestMissingCredentialsThenCreated: CredentialsNotFound, then creating the
// Secret makes the TokenRequest Ready at once, without waiting for the backoff.
func TestMissingCredentialsThenCreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTokenRequest("early", providertest.AML, "later-creds")
	var tr *tokensyncv1alpha1.TokenRequest
	eventually(t, readyTimeout, func() error {
		tr = e.tokenRequest("early")
		if c := readyCondition(tr); c == nil || c.Reason != tokensyncv1alpha1.ReasonCredentialsNotFound || tr.Status.FailedAttempts < 2 {
			return fmt.Errorf("condition %+v, failedAttempts %d", c, tr.Status.FailedAttempts)
		}
		return nil
	})
	msg := readyCondition(tr).Message
	for _, want := range []string{`"later-creds"`, "email", "password"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %s", msg, want)
		}
	}
	e.waitEvent("early", "Warning/CredentialsNotFound")
	retryAt := tr.Status.NextRefreshTime.Time

	e.createSecret("later-creds", map[string]string{"email": "ops@example.com", "password": "correct-horse"})
	tr = e.waitReady("early")
	if !tr.Status.LastRefreshTime.Time.Before(retryAt) {
		t.Errorf("became Ready at %s, not before the scheduled retry at %s: the Secret's creation did not trigger a login", tr.Status.LastRefreshTime, retryAt)
	}
}

// TestMissingKeyIsReportedWithoutARequest: a credentials Secret lacking a key
// is reported by name and nothing is sent.
func TestMissingKeyIsReportedWithoutARequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("half-creds", map[string]string{"email": "ops@example.com"})
	e.createTokenRequest("half", providertest.AML, "half-creds")
	tr := e.waitCondition("half", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidCredentials)
	if msg := readyCondition(tr).Message; !strings.Contains(msg, "password") {
		t.Errorf("message %q does not name the missing key", msg)
	}
	if n := e.fake.Attempts(providertest.AML); n != 0 {
		t.Errorf("%d requests sent with certainly wrong credentials", n)
	}
	// Fixing the Secret fixes the TokenRequest at once.
	e.updateSecret("half-creds", map[string]string{"email": "ops@example.com", "password": "correct-horse"})
	e.waitReady("half")
}

// TestCredentialsRotation: a change of the credentials Secret logs in again
// with the new credentials although the token is still valid.
func TestCredentialsRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", map[string]string{"accessKey": "old-key", "secret": "old-secret"})
	e.createTokenRequest("rot", providertest.Partner, "creds")
	e.waitReady("rot")
	old := e.token("rot")

	e.updateSecret("creds", map[string]string{"accessKey": "new-key", "secret": "new-secret"})
	eventually(t, readyTimeout, func() error {
		if n := e.fake.LoginsFor(providertest.Partner, "new-key"); n != 1 {
			return fmt.Errorf("%d logins with the new credentials", n)
		}
		if e.token("rot") == old {
			return fmt.Errorf("token not replaced")
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	if n := e.fake.Logins(providertest.Partner); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
}

// TestForceRefresh: a new force-refresh value triggers exactly one login;
// the same value does not trigger again.
func TestForceRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("force", providertest.Partner, "creds")
	e.waitReady("force")

	setAnnotation := func(k, v string) {
		e.patchTokenRequest("force", func(tr *tokensyncv1alpha1.TokenRequest) {
			if tr.Annotations == nil {
				tr.Annotations = map[string]string{}
			}
			tr.Annotations[k] = v
		})
	}
	setAnnotation(tokensyncv1alpha1.AnnotationForceRefresh, "2026-11-22T10:00:00Z")
	eventually(t, readyTimeout, func() error {
		if tr := e.tokenRequest("force"); tr.Status.LastForceRefresh != "2026-11-22T10:00:00Z" {
			return fmt.Errorf("lastForceRefresh %q", tr.Status.LastForceRefresh)
		}
		return nil
	})
	// Another annotation change reconciles again but must not log in again.
	setAnnotation("example.com/unrelated", "x")
	consistently(t, 3*time.Second, func() error {
		if n := e.fake.Logins(providertest.Partner); n != 2 {
			return fmt.Errorf("%d logins, want 2", n)
		}
		return nil
	})
	setAnnotation(tokensyncv1alpha1.AnnotationForceRefresh, "again")
	eventually(t, readyTimeout, func() error {
		if n := e.fake.Logins(providertest.Partner); n != 3 {
			return fmt.Errorf("%d logins, want 3", n)
		}
		return nil
	})
}

// TestSecretConflicts: a Secret someone else owns is never touched.
func TestSecretConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	e.createSecret("taken", map[string]string{"token": "theirs"})
	e.createTokenRequest("intruder", providertest.Partner, "creds", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.SecretName = "taken" })
	tr := e.waitCondition("intruder", metav1.ConditionFalse, tokensyncv1alpha1.ReasonSecretConflict)
	if msg := readyCondition(tr).Message; !strings.Contains(msg, `"taken"`) || !strings.Contains(msg, "spec.secretName") {
		t.Errorf("message %q does not say what to do", msg)
	}
	if s, _ := e.secret("taken"); string(s.Data["token"]) != "theirs" || len(s.OwnerReferences) != 0 {
		t.Errorf("the foreign Secret was modified")
	}
	if n := e.fake.Attempts(providertest.Partner); n != 0 {
		t.Errorf("%d logins for a Secret that cannot be written", n)
	}

	// Two TokenRequests naming the same Secret: the second gets SecretConflict.
	e.createTokenRequest("first", providertest.Partner, "creds", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.SecretName = "shared" })
	first := e.waitReady("first")
	e.createTokenRequest("second", providertest.Partner, "creds", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.SecretName = "shared" })
	e.waitCondition("second", metav1.ConditionFalse, tokensyncv1alpha1.ReasonSecretConflict)
	if s, _ := e.secret("shared"); !ownerIsController(s, first) {
		t.Errorf("the shared Secret changed hands")
	}
}

// TestTargetSecretRestored: deleting the Secret or editing its token by hand
// restores it with a fresh login.
func TestTargetSecretRestored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("restore", providertest.Partner, "creds")
	e.waitReady("restore")
	first := e.token("restore")

	s, _ := e.secret("restore")
	if err := k8sClient.Delete(e.ctx(), s); err != nil {
		t.Fatal(err)
	}
	eventually(t, readyTimeout, func() error {
		if tok := e.token("restore"); tok == "" || tok == first {
			return fmt.Errorf("Secret not restored")
		}
		return nil
	})
	second := e.token("restore")

	s, _ = e.secret("restore")
	s.Data["token"] = []byte("edited-by-hand")
	if err := k8sClient.Update(e.ctx(), s); err != nil {
		t.Fatal(err)
	}
	eventually(t, readyTimeout, func() error {
		if tok := e.token("restore"); tok == "edited-by-hand" || tok == second {
			return fmt.Errorf("edited token not restored")
		}
		return nil
	})
	if n := e.fake.Logins(providertest.Partner); n != 3 {
		t.Errorf("%d logins, want 3", n)
	}
}

// TestSecretNameChange: the new Secret is written and the old one deleted.
func TestSecretNameChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("rename", providertest.Partner, "creds")
	e.waitReady("rename")
	e.patchTokenRequest("rename", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.SecretName = "renamed" })
	eventually(t, readyTimeout, func() error {
		if _, err := e.secret("renamed"); err != nil {
			return err
		}
		if _, err := e.secret("rename"); err == nil {
			return fmt.Errorf("old Secret still there")
		}
		if tr := e.tokenRequest("rename"); tr.Status.SecretName != "renamed" || readyCondition(tr).Status != metav1.ConditionTrue {
			return fmt.Errorf("status %+v", tr.Status)
		}
		return nil
	})
}

// TestTemplateChangeNeedsNoLogin: editing secretTemplate updates the Secret's
// metadata without a login.
func TestTemplateChangeNeedsNoLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("tmpl", providertest.Partner, "creds")
	e.waitReady("tmpl")
	e.patchTokenRequest("tmpl", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{Labels: map[string]tokensyncv1alpha1.LabelValue{"tier": "gold"}}
	})
	eventually(t, readyTimeout, func() error {
		s, err := e.secret("tmpl")
		if err != nil || s.Labels["tier"] != "gold" {
			return fmt.Errorf("label not applied: %v", err)
		}
		return nil
	})
	if n := e.fake.Logins(providertest.Partner); n != 1 {
		t.Errorf("%d logins, want 1", n)
	}
}

// TestAuthenticationFailure: wrong credentials back off from a minute.
func TestAuthenticationFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fake.SetValid(providertest.Partner, map[string]string{"accessKey": "right", "secret": "right"})
	e.createSecret("creds", map[string]string{"accessKey": "right", "secret": "wrong"})
	e.createTokenRequest("auth", providertest.Partner, "creds")
	tr := e.waitCondition("auth", metav1.ConditionFalse, tokensyncv1alpha1.ReasonAuthenticationFailed)
	if d := tr.Status.NextRefreshTime.Sub(readyCondition(tr).LastTransitionTime.Time); d < 40*time.Second {
		t.Errorf("retry scheduled %s after an authentication failure, want about a minute", d)
	}
	if !strings.Contains(readyCondition(tr).Message, "AccessKeyUnauthorized") {
		t.Errorf("message %q does not carry the provider's reason", readyCondition(tr).Message)
	}
	eventually(t, readyTimeout, func() error {
		if v, labels := seriesValue(t, "tokensync_tokenrequest_stalled", e.ns, "auth"); v != 1 || labels["reason"] != tokensyncv1alpha1.ReasonAuthenticationFailed {
			return fmt.Errorf("tokensync_tokenrequest_stalled %v %v, want 1 with reason AuthenticationFailed", v, labels)
		}
		return nil
	})
	consistently(t, 3*time.Second, func() error {
		if n := e.fake.Attempts(providertest.Partner); n != 1 {
			return fmt.Errorf("%d attempts, want 1", n)
		}
		return nil
	})
	e.updateSecret("creds", map[string]string{"accessKey": "right", "secret": "right"})
	e.waitReady("auth")
}

// TestDeletion: the owner reference makes the Secret go with its
// TokenRequest (envtest has no garbage collector, so the reference itself is
// asserted in TestEachProviderEndToEnd), and the metrics series go too.
func TestDeletionForgetsMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	tr := e.createTokenRequest("gone", providertest.Partner, "creds")
	e.waitReady("gone")
	if n := seriesFor(t, e.ns, "gone"); n != 4 {
		t.Fatalf("%d tokensync series for the TokenRequest, want 4 (expiry, refresh, ready, stalled)", n)
	}
	if err := k8sClient.Delete(e.ctx(), tr); err != nil {
		t.Fatal(err)
	}
	eventually(t, readyTimeout, func() error {
		if n := seriesFor(t, e.ns, "gone"); n != 0 {
			return fmt.Errorf("%d series left", n)
		}
		return nil
	})
}

// TestEndpointChangeReplacesToken: sandbox -> production on a healthy
// TokenRequest logs in to the new endpoint at once.
func TestEndpointChangeReplacesToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	production := providertest.Start(t)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("move", providertest.Partner, "creds")
	e.waitReady("move")
	sandboxToken := e.token("move")

	e.patchTokenRequest("move", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.Endpoint = production.URL() })
	eventually(t, readyTimeout, func() error {
		s, err := e.secret("move")
		if err != nil {
			return err
		}
		if string(s.Data["token"]) == sandboxToken || s.Annotations[tokensyncv1alpha1.AnnotationEndpoint] != production.URL() {
			return fmt.Errorf("the Secret still holds the sandbox's token")
		}
		if tr := e.tokenRequest("move"); tr.Status.ObservedGeneration != tr.Generation || readyCondition(tr).Status != metav1.ConditionTrue {
			return fmt.Errorf("status %+v", tr.Status)
		}
		return nil
	})
	if n := production.Logins(providertest.Partner); n != 1 {
		t.Errorf("%d logins at the new endpoint, want 1", n)
	}
	if n := e.fake.Logins(providertest.Partner); n != 1 {
		t.Errorf("%d logins at the old endpoint, want 1", n)
	}
}

// TestCredentialsMetadataChangesCostNoLogin: kubectl label, annotate and the
// documented re-encryption step (kubectl replace with the same data) on the
// credentials Secret cost no login; with wrong credentials they do not
// bypass the backoff either.
func TestCredentialsMetadataChangesCostNoLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fake.SetValid(providertest.Partner, partnerCreds)
	e.createSecret("creds", partnerCreds)
	e.createSecret("wrong-creds", map[string]string{"accessKey": "ak-1", "secret": "wrong"})
	e.createTokenRequest("good", providertest.Partner, "creds")
	e.createTokenRequest("bad", providertest.Partner, "wrong-creds")
	e.waitReady("good")
	e.waitCondition("bad", metav1.ConditionFalse, tokensyncv1alpha1.ReasonAuthenticationFailed)
	eventually(t, readyTimeout, func() error {
		if n := e.fake.Attempts(providertest.Partner); n != 2 {
			return fmt.Errorf("%d attempts, want 2", n)
		}
		return nil
	})

	touch := func(name string, mutate func(*corev1.Secret)) {
		eventually(t, readyTimeout, func() error {
			s, err := e.secret(name)
			if err != nil {
				return err
			}
			mutate(s)
			return k8sClient.Update(e.ctx(), s)
		})
	}
	for _, name := range []string{"creds", "wrong-creds"} {
		touch(name, func(s *corev1.Secret) { s.Labels = map[string]string{"team": "payments"} })
		touch(name, func(s *corev1.Secret) { s.Annotations = map[string]string{"example.com/rotated-by": "nobody"} })
		touch(name, func(*corev1.Secret) {}) // kubectl get -o json | kubectl replace -f -
	}
	consistently(t, 5*time.Second, func() error {
		if n := e.fake.Attempts(providertest.Partner); n != 2 {
			return fmt.Errorf("%d attempts after metadata-only changes, want 2", n)
		}
		return nil
	})
	// A content change is a rotation: a login at once.
	touch("wrong-creds", func(s *corev1.Secret) { s.Data["secret"] = []byte(partnerCreds["secret"]) })
	e.waitReady("bad")
}

// TestRefusedSecretWriteKeepsTheLogin: a ResourceQuota refuses the target
// Secret: at most two logins while it does (the token obtained is kept and
// its write retried), and the token lands once the quota allows it.
func TestRefusedSecretWriteKeepsTheLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	// envtest runs no quota controller: the quota's status is set by hand,
	// and the quota admission plugin enforces it.
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "secrets", Namespace: e.ns},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/secrets": resource.MustParse("1")}},
	}
	if err := k8sClient.Create(e.ctx(), quota); err != nil {
		t.Fatal(err)
	}
	setQuota := func(hard string) {
		eventually(t, readyTimeout, func() error {
			q := &corev1.ResourceQuota{}
			if err := k8sClient.Get(e.ctx(), client.ObjectKeyFromObject(quota), q); err != nil {
				return err
			}
			q.Spec.Hard = corev1.ResourceList{"count/secrets": resource.MustParse(hard)}
			if err := k8sClient.Update(e.ctx(), q); err != nil {
				return err
			}
			q.Status.Hard = q.Spec.Hard
			q.Status.Used = corev1.ResourceList{"count/secrets": resource.MustParse("1")}
			return k8sClient.Status().Update(e.ctx(), q)
		})
	}
	setQuota("1")
	e.createTokenRequest("quota", providertest.Partner, "creds")
	tr := e.waitCondition("quota", metav1.ConditionFalse, tokensyncv1alpha1.ReasonSecretWriteFailed)
	if msg := readyCondition(tr).Message; !strings.Contains(msg, "exceeded quota") {
		t.Errorf("message %q does not carry the API server's reason", msg)
	}
	e.waitEvent("quota", "Warning/SecretWriteFailed")
	consistently(t, 12*time.Second, func() error { // write retries at about 5s and 10s
		if n := e.fake.Logins(providertest.Partner); n > 2 {
			return fmt.Errorf("%d logins while the write is refused, want at most 2", n)
		}
		return nil
	})
	setQuota("10")
	e.waitReady("quota")
	if n := e.fake.Logins(providertest.Partner); n > 2 {
		t.Errorf("%d logins in all, want at most 2", n)
	}
	if tok := e.token("quota"); tok == "" {
		t.Error("no token in the Secret")
	}
}

// TestForeignSecretDeletedRecoversAtOnce: a TokenRequest blocked by a
// Secret it does not own becomes Ready within seconds of its deletion.
func TestForeignSecretDeletedRecoversAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	foreign := e.createSecret("taken", map[string]string{"token": "theirs"})
	e.createTokenRequest("blocked", providertest.Partner, "creds", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.SecretName = "taken" })
	tr := e.waitCondition("blocked", metav1.ConditionFalse, tokensyncv1alpha1.ReasonSecretConflict)
	if c := meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled %+v, want True: a person must act", c)
	}
	time.Sleep(2 * time.Second)
	if err := k8sClient.Delete(e.ctx(), foreign); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	e.waitReady("blocked")
	if took := time.Since(deleted); took > 20*time.Second {
		t.Errorf("Ready %s after the foreign Secret was deleted, want within seconds", took.Round(time.Second))
	}
}

// TestTemplateRemovals: keys removed from secretTemplate leave the Secret;
// keys someone else put there stay.
func TestTemplateRemovals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("tmpl", providertest.Partner, "creds", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{
			Labels:      map[string]tokensyncv1alpha1.LabelValue{"tier": "gold", "team": "payments"},
			Annotations: map[string]string{"example.com/owner": "payments"},
		}
	})
	e.waitReady("tmpl")
	eventually(t, readyTimeout, func() error {
		s, err := e.secret("tmpl")
		if err != nil {
			return err
		}
		s.Labels["added-by-someone"] = "x"
		s.Annotations["reloader.stakater.com/match"] = "true"
		return k8sClient.Update(e.ctx(), s)
	})
	e.patchTokenRequest("tmpl", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.SecretTemplate = &tokensyncv1alpha1.SecretTemplate{Labels: map[string]tokensyncv1alpha1.LabelValue{"tier": "silver"}}
	})
	eventually(t, readyTimeout, func() error {
		s, err := e.secret("tmpl")
		if err != nil {
			return err
		}
		if s.Labels["tier"] != "silver" || s.Labels["team"] != "" || s.Annotations["example.com/owner"] != "" {
			return fmt.Errorf("labels %v annotations %v", s.Labels, s.Annotations)
		}
		if s.Labels["added-by-someone"] != "x" || s.Annotations["reloader.stakater.com/match"] != "true" {
			return fmt.Errorf("someone else's keys removed: labels %v annotations %v", s.Labels, s.Annotations)
		}
		return nil
	})
	if n := e.fake.Logins(providertest.Partner); n != 1 {
		t.Errorf("%d logins, want 1", n)
	}
}

// TestSuspend: while suspended nothing is sent or written, not even for a
// force-refresh or a deleted Secret; resuming acts at once.
func TestSuspend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("paused", providertest.Partner, "creds")
	e.waitReady("paused")
	e.patchTokenRequest("paused", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.Suspend = true })
	e.waitCondition("paused", metav1.ConditionTrue, tokensyncv1alpha1.ReasonSuspended)

	e.forceRefresh("paused", "while-suspended")
	s, _ := e.secret("paused")
	if err := k8sClient.Delete(e.ctx(), s); err != nil {
		t.Fatal(err)
	}
	consistently(t, 4*time.Second, func() error {
		if n := e.fake.Attempts(providertest.Partner); n != 1 {
			return fmt.Errorf("%d attempts while suspended", n)
		}
		if _, err := e.secret("paused"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the Secret was written while suspended (%v)", err)
		}
		return nil
	})
	e.patchTokenRequest("paused", func(tr *tokensyncv1alpha1.TokenRequest) { tr.Spec.Suspend = false })
	resumed := time.Now()
	e.waitReady("paused")
	if took := time.Since(resumed); took > 15*time.Second {
		t.Errorf("took %s after resuming", took.Round(time.Second))
	}
	if n := e.fake.Logins(providertest.Partner); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
	if tr := e.tokenRequest("paused"); tr.Status.LastForceRefresh != "while-suspended" {
		t.Errorf("lastForceRefresh %q: the force-refresh was not honoured on resume", tr.Status.LastForceRefresh)
	}
}

// TestRetain: with deletionPolicy Retain the Secret has no owner reference
// (a prune cannot take it), the TokenRequest is deleted at once (no
// finalizer), and a TokenRequest of the same name adopts the Secret without
// a login.
func TestRetain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("kept", providertest.Partner, "creds")
	e.waitReady("kept")
	e.patchTokenRequest("kept", func(tr *tokensyncv1alpha1.TokenRequest) {
		tr.Spec.DeletionPolicy = tokensyncv1alpha1.DeletionPolicyRetain
	})
	eventually(t, readyTimeout, func() error {
		s, err := e.secret("kept")
		if err != nil {
			return err
		}
		if len(s.OwnerReferences) != 0 || s.Annotations[tokensyncv1alpha1.AnnotationOwner] != "kept" {
			return fmt.Errorf("owner references %v, annotations %v", s.OwnerReferences, s.Annotations)
		}
		return nil
	})
	tok := e.token("kept")
	tr := e.tokenRequest("kept")
	if len(tr.Finalizers) != 0 {
		t.Errorf("finalizers %v: Retain needs none", tr.Finalizers)
	}
	if err := k8sClient.Delete(e.ctx(), tr); err != nil {
		t.Fatal(err)
	}
	eventually(t, readyTimeout, func() error {
		if err := k8sClient.Get(e.ctx(), client.ObjectKeyFromObject(tr), &tokensyncv1alpha1.TokenRequest{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the TokenRequest is still there: %v", err)
		}
		return nil
	})
	if e.token("kept") != tok {
		t.Fatal("the retained Secret lost its token")
	}
	e.createTokenRequest("kept", providertest.Partner, "creds")
	again := e.waitReady("kept")
	if e.token("kept") != tok || e.fake.Logins(providertest.Partner) != 1 {
		t.Errorf("the re-created TokenRequest did not adopt the valid token (%d logins)", e.fake.Logins(providertest.Partner))
	}
	s, _ := e.secret("kept")
	if !ownerIsController(s, again) {
		t.Errorf("with deletionPolicy Delete the adopted Secret is not owned: %v", s.OwnerReferences)
	}
}
