package controllers

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestRequestBlockedRetriesUntilHealed drives one TokenRequest per built-in
// provider through the reconciler, its provider against its fake, on a fake
// clock: five answers a firewall in front of the provider gives (a 403 HTML
// page, an empty 401) are RequestBlocked, never Stalled and never a step
// toward the lockout, each retried in the slow class; when the provider
// answers again, the TokenRequest gets a new token with no person acting.
// The provider's documented rejection, the same way, is Stalled from the
// first and stops after the third.
func TestRequestBlockedRetriesUntilHealed(t *testing.T) {
	for _, reg := range builtin.Registrations() {
		t.Run(reg.Name, func(t *testing.T) {
			u := newUnitEnv(t)
			fake := providertest.Start(t, providertest.WithClock(u.clock.Now))
			f := fakeFor(reg.Name)
			served := f.Name
			if !f.Served() {
				served = f.Via
			}
			u.r.Providers = builtin.NewRegistry(providers.Options{Now: u.clock.Now})
			u.updateCredentials(t, func(s *corev1.Secret) {
				s.Data = map[string][]byte{}
				for k, v := range credsFor(reg.Name) {
					s.Data[k] = []byte(v)
				}
			})
			u.updateSpec(t, func(tr *tokensyncv1alpha1.TokenRequest) {
				tr.Spec.Provider = tokensyncv1alpha1.Provider(reg.Name)
				tr.Spec.Endpoint = f.Endpoint(fake.URL())
				withSettingsFor(reg.Name)(tr)
			})
			// untilNextAttempt moves the clock to the retry the status
			// schedules, and reconciles.
			untilNextAttempt := func(t *testing.T) *tokensyncv1alpha1.TokenRequest {
				t.Helper()
				tr := u.tokenRequest(t)
				if tr.Status.NextRefreshTime == nil {
					t.Fatalf("no retry scheduled (Ready %+v)", readyCondition(tr))
				}
				u.clock.SetTime(tr.Status.NextRefreshTime.Time)
				u.reconcile(t)
				return u.tokenRequest(t)
			}

			for i := range 5 {
				failure := providertest.Failure{Fault: providertest.NotJSON, Status: http.StatusForbidden}
				if i%2 == 1 {
					failure = providertest.Failure{Fault: providertest.EmptyBody, Status: http.StatusUnauthorized}
				}
				fake.FailNextWith(served, 1, failure)
			}
			u.reconcile(t)
			tr := u.tokenRequest(t)
			for i := 1; i <= 5; i++ {
				if i > 1 {
					before := u.clock.Now()
					tr = untilNextAttempt(t)
					if waited := u.clock.Now().Sub(before); waited < time.Minute {
						t.Errorf("attempt %d came %s after the one before, want the slow class (at least a minute)", i, waited)
					}
				}
				ready := readyCondition(tr)
				if ready == nil || ready.Reason != tokensyncv1alpha1.ReasonRequestBlocked || !strings.Contains(ready.Message, "the credentials were not judged") {
					t.Fatalf("attempt %d: Ready %+v, want RequestBlocked", i, ready)
				}
				if meta.FindStatusCondition(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled) != nil ||
					!meta.IsStatusConditionTrue(tr.Status.Conditions, tokensyncv1alpha1.ConditionReconciling) {
					t.Fatalf("attempt %d: conditions %+v, want Reconciling and no Stalled", i, tr.Status.Conditions)
				}
				if n := tr.Status.LastAttempt.AuthenticationFailures; n != 0 || tr.Status.FailedAttempts != int32(i) {
					t.Fatalf("attempt %d: %d authentication failures, %d failed attempts", i, n, tr.Status.FailedAttempts)
				}
			}
			if got := fake.Attempts(served); got != 5 {
				t.Fatalf("%d requests for 5 attempts", got)
			}

			// The firewall lets the requests through again.
			tr = untilNextAttempt(t)
			if ready := readyCondition(tr); ready == nil || ready.Status != metav1.ConditionTrue || tr.Status.FailedAttempts != 0 {
				t.Fatalf("after the provider healed: Ready %+v, %d failed attempts", ready, tr.Status.FailedAttempts)
			}
			if s := u.secret(t); s == nil || string(s.Data[tokensyncv1alpha1.SecretKeyToken]) != fake.LastToken(served) || fake.Logins(served) != 1 {
				t.Fatalf("the Secret does not hold the token the provider issued (%d logins)", fake.Logins(served))
			}

			// The provider's own rejection, for comparison: Stalled from the
			// first, and the third stops every login.
			fake.SetValid(served, map[string]string{"a key no login sends": "x"})
			u.clock.Step(time.Minute) // past any minimum interval between logins
			tr = u.tokenRequest(t)
			tr.Annotations = map[string]string{tokensyncv1alpha1.AnnotationForceRefresh: "rejected"}
			if err := u.r.Update(context.Background(), tr); err != nil {
				t.Fatal(err)
			}
			u.reconcile(t)
			for i := 1; i <= tokensyncv1alpha1.MaxAuthenticationFailures; i++ {
				if i > 1 {
					tr = untilNextAttempt(t)
				} else {
					tr = u.tokenRequest(t)
				}
				ready := readyCondition(tr)
				if ready == nil || ready.Reason != tokensyncv1alpha1.ReasonAuthenticationFailed ||
					!meta.IsStatusConditionTrue(tr.Status.Conditions, tokensyncv1alpha1.ConditionStalled) || tr.Status.LastAttempt.AuthenticationFailures != int32(i) {
					t.Fatalf("rejection %d: Ready %+v, conditions %+v, lockout count %d", i, ready, tr.Status.Conditions, tr.Status.LastAttempt.AuthenticationFailures)
				}
			}
			if tr.Status.NextRefreshTime != nil {
				t.Fatalf("after %d rejections a retry is scheduled at %s", tokensyncv1alpha1.MaxAuthenticationFailures, tr.Status.NextRefreshTime)
			}
			attempts := fake.Attempts(served)
			u.clock.Step(2 * time.Hour)
			u.reconcile(t)
			if fake.Attempts(served) != attempts {
				t.Fatal("a login was sent after the lockout")
			}
		})
	}
}
