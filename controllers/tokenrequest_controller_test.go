package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/fake"
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

// TestMinLoginInterval: a TokenRequest whose tokens live 2 s, its
// force-refresh annotation bumped every second and its manager restarted
// midway, logs in at most once per minimum login interval (the default,
// 10 s, counted from status times kept to the second), and again after each
// interval; its Ready condition says the token lives shorter than that.
func TestMinLoginInterval(t *testing.T) {
	t.Parallel()
	e := newEnv(t, providertest.WithLifetime(providertest.Partner, 2*time.Second))
	e.fake.SetValid(providertest.Partner, partnerCreds)
	e.createSecret("creds", partnerCreds)

	var (
		mu     sync.Mutex
		logins []time.Time // when each request was first seen at the provider
	)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for seen := 0; ; {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			n := e.fake.Attempts(providertest.Partner)
			mu.Lock()
			for ; seen < n; seen++ {
				logins = append(logins, time.Now())
			}
			mu.Unlock()
		}
	}()
	defer func() { close(stop); <-stopped }()

	e.createTokenRequest("brief", providertest.Partner, "creds")
	tr := e.waitReady("brief")
	if msg := readyCondition(tr).Message; !strings.Contains(msg, "shorter than the minimum login interval of 10s") {
		t.Errorf("Ready for a 2 s token does not say it lives shorter than the interval: %q", msg)
	}
	start := time.Now()
	for i := 0; time.Since(start) < 25*time.Second; i++ {
		e.forceRefresh("brief", strconv.Itoa(i))
		if i == 12 {
			e.restart()
		}
		time.Sleep(time.Second)
	}

	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(logins); i++ {
		if gap := logins[i].Sub(logins[i-1]); gap < DefaultMinLoginInterval-time.Second-50*time.Millisecond {
			t.Errorf("login %d came %s after login %d, under the minimum login interval %s", i+1, gap.Round(time.Millisecond), i, DefaultMinLoginInterval)
		}
	}
	if len(logins) < 3 {
		t.Errorf("%d logins in %s of forced refreshes, want one per interval", len(logins), time.Since(start).Round(time.Second))
	}
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
// Secret makes the TokenRequest Ready at once, without waiting for the
// backoff. The minimum login interval, which counts failed attempts too, is
// set under the backoff's, so that the Secret's creation is what is measured.
func TestMissingCredentialsThenCreated(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) { r.MinLoginInterval = time.Second })
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
	// The gauges are read from the manager's cache, which may be a moment
	// behind the API server that waitReady reads.
	eventually(t, readyTimeout, func() error {
		if n := seriesFor(t, e.ns, "gone"); n != 7 {
			return fmt.Errorf("%d tokensync series for the TokenRequest, want 7 (expiry, refresh, planned refresh, refresh window, ready, stalled, suspended)", n)
		}
		return nil
	})
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
		touch(name, func(s *corev1.Secret) { s.Labels["team"] = "payments" })
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

// TestNoSecretValueLeaks drives success and failure paths with sentinel
// credentials, then searches the whole test run's logs, this namespace's
// events and every status for the sentinels and for every token issued.
// Every built-in provider logs in with the sentinel credentials of its
// test registration (fake.Provider.SentinelCredentials), at a fake of its
// own that accepts them; the failure paths are AML Watcher's, AmpliFi's and
// the partner API's.
func TestNoSecretValueLeaks(t *testing.T) {
	t.Parallel()
	const (
		email    = "sentinel-email-7d1f@example.com"
		password = "SENTINEL-PASSWORD-7d1f"
		key      = "SENTINEL-ACCESS-KEY-7d1f"
		secret   = "SENTINEL-SECRET-7d1f"
		device   = "SENTINEL-DEVICE-7d1f"
	)
	e := newEnv(t, providertest.WithLifetime(providertest.Partner, 12*time.Second))
	e.fake.SetValid(providertest.AML, map[string]string{"email": email, "password": password})
	e.createSecret("aml-good-creds", map[string]string{"email": email, "password": password})
	e.createSecret("aml-bad-creds", map[string]string{"email": email, "password": password + "-WRONG"})
	e.createSecret("partner-creds", map[string]string{"accessKey": key, "secret": secret})
	e.createSecret("partner-half-creds", map[string]string{"accessKey": key})
	e.createSecret("amplifi-creds", map[string]string{"channel": "test", "deviceTag": device, "deviceData": `{"platform":"` + device + `"}`})
	e.createSecret("amplifi-junk-creds", map[string]string{"credentials.json": `{"channel": "internet", "password": "` + password + `"`})

	e.createTokenRequest("aml-good", providertest.AML, "aml-good-creds")
	e.createTokenRequest("aml-bad", providertest.AML, "aml-bad-creds")
	e.createTokenRequest("partner", providertest.Partner, "partner-creds", withRefreshBefore(10*time.Second))
	e.createTokenRequest("partner-half", providertest.Partner, "partner-half-creds")
	e.createTokenRequest("amplifi", providertest.AmpliFi, "amplifi-creds")
	e.createTokenRequest("amplifi-junk", providertest.AmpliFi, "amplifi-junk-creds")
	everyProvider := providertest.Start(t)
	var sentinels []string
	for _, f := range providertest.Fakes() {
		sentinel := "SENTINEL-" + strings.ToUpper(f.Name) + "-7d1f"
		sentinels = append(sentinels, sentinel)
		e.createSecret(f.Name+"-sentinel-creds", f.SentinelCredentials(sentinel))
		e.createTokenRequest(f.Name+"-sentinel", f.Name, f.Name+"-sentinel-creds",
			withEndpoint(f.Endpoint(everyProvider.URL())), withSettingsFor(f.Name))
	}

	e.waitReady("aml-good")
	e.waitReady("amplifi")
	e.waitReady("partner")
	e.waitCondition("aml-bad", metav1.ConditionFalse, tokensyncv1alpha1.ReasonAuthenticationFailed)
	e.waitCondition("partner-half", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidCredentials)
	e.waitCondition("amplifi-junk", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidCredentials)

	// A refresh that fails with a provider error, then one that succeeds.
	tokens := []string{e.token("aml-good"), e.token("amplifi"), e.token("partner")}
	names := []string{"aml-good", "aml-bad", "partner", "partner-half", "amplifi", "amplifi-junk"}
	for _, f := range providertest.Fakes() {
		e.waitReady(f.Name + "-sentinel")
		tokens = append(tokens, e.token(f.Name+"-sentinel"))
		names = append(names, f.Name+"-sentinel")
	}
	e.fake.FailNextWith(providertest.Partner, 1, providertest.Failure{Fault: providertest.NotJSON})
	e.waitCondition("partner", metav1.ConditionFalse, tokensyncv1alpha1.ReasonInvalidResponse)
	e.waitReady("partner")
	tokens = append(tokens, e.token("partner"))

	e.waitEvent("aml-bad", "Warning/AuthenticationFailed")
	e.waitEvent("partner", "Warning/InvalidResponse")
	sentinels = append(sentinels, email, password, key, secret, device)
	sentinels = append(sentinels, tokens...)
	for _, tok := range tokens {
		if tok == "" {
			t.Fatal("a token is missing")
		}
	}
	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := k8sClient.List(e.ctx(), list); err != nil {
		t.Fatal(err)
	}
	statuses, _ := json.Marshal(list)
	var events strings.Builder
	for _, n := range names {
		fmt.Fprintln(&events, strings.Join(e.events(n), "\n"))
	}
	if !strings.Contains(events.String(), "AuthenticationFailed") || !strings.Contains(events.String(), "InvalidResponse") {
		t.Fatalf("the failure paths did not run: events %s", events.String())
	}
	logs := testLogs.String()
	if !strings.Contains(logs, "Attempt failed") {
		t.Fatal("no failure was logged: the log capture does not work")
	}
	for _, s := range sentinels {
		for what, text := range map[string]string{"logs": logs, "events": events.String(), "statuses": string(statuses)} {
			if strings.Contains(text, s) {
				t.Errorf("%s contain a secret value (%.12s...)", what, s)
			}
		}
	}
}

// leakyProvider answers every fake's login path under a base path naming
// the answer (/<mode>/login, /<mode>/token, ...), and fills every answer it
// can with a sentinel: free text made of markers that share one random
// core, so any piece of a body long enough to mean anything carries the
// core. The provider-shaped answers are the fakes' own hostile ones
// (fake.Provider.Hostile); the others break HTTP itself.
type leakyProvider struct {
	core string // random; the scan looks for it
	// idCore is the core of an identifier-shaped sentinel (see mode idReason).
	idCore string

	mu   sync.Mutex
	hits map[string]int // mode -> requests
}

func newLeakyProvider(t *testing.T) (*leakyProvider, *httptest.Server) {
	t.Helper()
	p := &leakyProvider{core: randomHex(t), idCore: randomHex(t), hits: map[string]int{}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func randomHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// text is free text of markers: any 24 bytes of it hold the core.
func (p *leakyProvider) text() string {
	return strings.Repeat("Lk"+p.core+" ", 4) + "password invalid Lk" + p.core
}

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// servedFake returns the fake answering path (its own or, for a provider
// without a login of its own, the one it logs in to).
func servedFake(path string) (fake.Provider, bool) {
	for _, f := range providertest.Fakes() {
		if f.Served() && f.Path == path {
			return f, true
		}
	}
	return fake.Provider{}, false
}

// hostility is the kind of provider-shaped answer a mode names.
func hostility(mode string) (fake.Hostility, int, bool) {
	if code, ok := strings.CutPrefix(mode, "status-"); ok {
		status, err := strconv.Atoi(code)
		return fake.HostileError, status, err == nil
	}
	for _, h := range fake.Hostilities() {
		if h.String() == mode {
			return h, 0, true
		}
	}
	return 0, 0, false
}

func (p *leakyProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	p.mu.Lock()
	p.hits[mode]++
	p.mu.Unlock()
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))

	text := p.text()
	f, known := servedFake("/" + rest)
	success := http.StatusOK
	if known {
		success = f.Success()
	}
	// Headers carry the sentinel too: a garbled Retry-After, a debug header.
	w.Header().Set("Retry-After", text)
	w.Header().Set("X-Debug", text)
	write := func(status int, contentType, body string) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	writeJSON := func(status int, body string) { write(status, "application/json", body) }
	q := jsonString(text)

	switch mode {
	case "html":
		write(success, "text/html", "<!DOCTYPE html><html><body><h1>"+text+"</h1><p>"+text+"</p></body></html>")
	case "redirect":
		w.Header().Set("Location", "https://evil.example.com/"+p.core+"?next="+p.core)
		write(http.StatusTemporaryRedirect, "text/html", text)
	case "truncated":
		w.Header().Set("Content-Length", "100000")
		writeJSON(success, `{"success": true, "token": `+q)
	case "garbage":
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, buf, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		_, _ = buf.WriteString("Lk" + p.core + " " + text + "\r\n\r\n")
		_ = buf.Flush()
		_ = conn.Close()
	case "huge":
		writeJSON(success, strings.Repeat(text, (2<<20)/len(text)))
	case "id-reason": // identifier-shaped, in the fields the partner client may quote
		id := jsonString("LkId" + p.idCore)
		if strings.HasSuffix(r.URL.Path, "/400/login") {
			writeJSON(http.StatusBadRequest, `{"statusCode": "Error", "error": {"name": "InvalidRequestFormatError", "details": [{"info": {"missingProperty": `+id+`}}]}}`)
			return
		}
		writeJSON(http.StatusUnauthorized, `{"statusCode": "Error", "error": {"name": "AuthenticationError", "details": {"reason": `+id+`}}}`)
	default:
		h, status, isHostile := hostility(mode)
		if !known || !isHostile {
			http.NotFound(w, r)
			return
		}
		answer, ok := f.Hostile(h, status, text)
		if !ok {
			http.NotFound(w, r)
			return
		}
		answer.Write(w)
	}
}

// TestProviderBodiesNeverLeak: whatever a provider answers (error statuses
// with bodies, HTML, success shapes without or with unusable tokens,
// redirects, truncated and malformed HTTP, huge bodies, and a usable token
// that is itself the sentinel), no part of its body or headers reaches a
// TokenRequest's status, an event or a log line.
func TestProviderBodiesNeverLeak(t *testing.T) {
	t.Parallel()
	leaky, srv := newLeakyProvider(t)
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 3 * time.Second})
	})
	// Every built-in provider, with its test registration's credentials and
	// settings: http logs in to AML Watcher's fake, so its answers are
	// AML-shaped.
	type probe struct{ name, provider, mode, endpoint string }
	var probes []probe
	for _, f := range providertest.Fakes() {
		served := f
		if !f.Served() {
			served, _ = providertest.FakeOf(f.Via)
		}
		var modes []string
		for _, status := range []int{400, 401, 403, 404, 409, 422, 429, 500, 503} {
			modes = append(modes, fmt.Sprintf("status-%d", status))
		}
		for _, h := range fake.Hostilities() {
			if _, ok := served.Hostile(h, 0, leaky.text()); ok {
				modes = append(modes, h.String())
			} else if h != fake.HostileToken {
				t.Errorf("%s's fake has no %s answer", served.Name, h)
			}
		}
		modes = append(modes, "html", "redirect", "truncated", "garbage", "huge")
		for _, mode := range modes {
			probes = append(probes, probe{name: mode + "-" + f.Name, provider: f.Name, mode: mode, endpoint: f.Endpoint(srv.URL + "/" + mode)})
		}
		e.createSecret(f.Name+"-creds", credsFor(f.Name))
	}
	for _, p := range probes {
		e.createTokenRequest(p.name, p.provider, p.provider+"-creds", withEndpoint(p.endpoint), withSettingsFor(p.provider))
	}
	for _, p := range probes {
		eventually(t, readyTimeout, func() error {
			if c := readyCondition(e.tokenRequest(p.name)); c == nil {
				return fmt.Errorf("%s: no Ready condition yet", p.name)
			}
			return nil
		})
		want := "Warning/"
		if p.mode == "token-is-sentinel" {
			want = "Normal/TokenRefreshed"
		}
		e.waitEvent(p.name, want)
	}
	for _, p := range probes {
		tr := e.tokenRequest(p.name)
		if c := readyCondition(tr); (c.Status == metav1.ConditionTrue) != (p.mode == "token-is-sentinel") {
			t.Errorf("%s: Ready %s/%s: %s", p.name, c.Status, c.Reason, c.Message)
		}
	}
	for _, p := range probes {
		if tok := e.token(p.name); p.mode == fake.HostileToken.String() && !strings.Contains(tok, leaky.core) {
			t.Fatalf("%s: the sentinel token was not stored: the success path did not run", p.name)
		}
	}

	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := k8sClient.List(e.ctx(), list, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	statuses, _ := json.Marshal(list)
	var events strings.Builder
	for _, p := range probes {
		fmt.Fprintln(&events, strings.Join(e.events(p.name), "\n"))
	}
	logs := testLogs.String()
	if !strings.Contains(logs, "Attempt failed") || !strings.Contains(events.String(), "InvalidResponse") {
		t.Fatal("the failure paths did not run, or the log capture does not work")
	}
	for what, text := range map[string]string{"statuses": string(statuses), "events": events.String(), "logs": logs} {
		if i := strings.Index(text, leaky.core); i >= 0 {
			t.Errorf("%s contain part of a provider's answer: ...%s...", what, text[max(0, i-200):min(len(text), i+100)])
		}
	}
}

// TestPartnerQuotesOnlyIdentifiers documents the one exception to
// TestProviderBodiesNeverLeak, made by the partner client on purpose: from
// a 400 or 401 answer it quotes missingProperty and reason values, when
// they are short identifiers ([A-Za-z0-9_.-], at most 64 characters) that
// echo no credential, so users see "AccessKeyUnauthorized". Nothing else of
// those answers appears.
func TestPartnerQuotesOnlyIdentifiers(t *testing.T) {
	t.Parallel()
	leaky, srv := newLeakyProvider(t)
	e := newEnv(t)
	e.createSecret("partner-creds", partnerCreds)
	e.createTokenRequest("reason-401", providertest.Partner, "partner-creds", withEndpoint(srv.URL+"/id-reason/401"))
	e.createTokenRequest("missing-400", providertest.Partner, "partner-creds", withEndpoint(srv.URL+"/id-reason/400"))
	id := "LkId" + leaky.idCore
	for name, want := range map[string]string{
		"reason-401":  "HTTP 401, reason " + id + ")",
		"missing-400": `it lacks the property "` + id + `"`,
	} {
		var c *metav1.Condition
		eventually(t, readyTimeout, func() error {
			if c = readyCondition(e.tokenRequest(name)); c == nil || c.Status != metav1.ConditionFalse {
				return fmt.Errorf("%s: Ready %+v", name, c)
			}
			return nil
		})
		if !strings.Contains(c.Message, want) {
			t.Errorf("%s: message %q does not quote the identifier as %q", name, c.Message, want)
		}
		if strings.Count(c.Message, leaky.idCore) != 1 {
			t.Errorf("%s: message %q quotes the answer more than once", name, c.Message)
		}
	}
}

// printerTable asks the API server for the table kubectl get prints.
func printerTable(t *testing.T, ns string) *metav1.Table {
	t.Helper()
	return printerTableOf(t, ns, "tokenrequests")
}

// printerTableOf asks for the table of a resource (ns empty: cluster-scoped).
func printerTableOf(t *testing.T, ns, resource string) *metav1.Table {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &tokensyncv1alpha1.GroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().Namespace(ns).Resource(resource).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(context.Background()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	table := &metav1.Table{}
	if err := json.Unmarshal(raw, table); err != nil {
		t.Fatal(err)
	}
	return table
}

// checkPrinterColumns checks kubectl's columns for a Ready TokenRequest.
func checkPrinterColumns(t *testing.T, ns string, tr *tokensyncv1alpha1.TokenRequest) {
	t.Helper()
	table := printerTable(t, ns)
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	want := []string{"Name", "Provider", "Secret", "Ready", "Expires", "Reason", "Next Refresh", "Age"}
	if len(names) != len(want) {
		t.Fatalf("columns %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("columns %v, want %v", names, want)
		}
	}
	for _, row := range table.Rows {
		if row.Cells[0] != tr.Name {
			continue
		}
		wantCells := []any{tr.Name, string(tr.Spec.Provider), tr.Status.SecretName, "True",
			tr.Status.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"), "TokenIssued", tr.Status.NextRefreshTime.UTC().Format("2006-01-02T15:04:05Z")}
		for i, w := range wantCells {
			if row.Cells[i] != w {
				t.Errorf("column %s = %v, want %v", want[i], row.Cells[i], w)
			}
		}
		if table.ColumnDefinitions[5].Priority != 1 || table.ColumnDefinitions[6].Priority != 1 {
			t.Errorf("Reason and Next Refresh should only show with -o wide")
		}
		return
	}
	t.Fatalf("no row for %s", tr.Name)
}
