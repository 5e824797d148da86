package policy

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// TestAfterFailure: one row per bookkeeping rule of a failed attempt.
func TestAfterFailure(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const endpoint = "https://partner.example"
	obs := func() *Observation {
		return &Observation{
			Now: t0, Generation: 2, Provider: "partner", Endpoint: endpoint, SecretName: "tok",
			Credentials: CredentialsState{Found: true, Allowed: true, Version: "7", Fingerprint: "k:one"},
		}
	}
	holding := func(validFor time.Duration) func(*Observation) {
		return func(o *Observation) {
			o.Target = TargetState{Exists: true, Holds: true, Held: HeldToken{ObtainedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(validFor), Intact: true}}
		}
	}
	// failedBefore is a status after n failures with reason.
	failedBefore := func(reason string, n int32) tokensyncv1alpha1.TokenStatus {
		st := tokensyncv1alpha1.TokenStatus{
			ObservedGeneration: 2,
			FailedAttempts:     n,
			LastAttempt: &tokensyncv1alpha1.LoginAttempt{
				Time: metav1.NewTime(t0.Add(-time.Minute)), Provider: "partner", Endpoint: endpoint, Result: reason,
			},
		}
		if reason == tokensyncv1alpha1.ReasonAuthenticationFailed {
			st.LastAttempt.AuthenticationFailures = n
		}
		return st
	}
	hostDown := func(o *Observation) {
		o.MinLoginInterval = DefaultMinLoginInterval
		o.Host = HostView{Name: "partner.example", Down: true, NextProbe: t0.Add(40 * time.Second)}
	}
	force := "f-2"
	tests := []struct {
		name    string
		status  tokensyncv1alpha1.TokenStatus
		obs     []func(*Observation)
		failure Failure
		// want
		attempts, lockout int32
		retryIn           time.Duration // 0: stopped
		stalled           bool
		check             func(*testing.T, tokensyncv1alpha1.TokenStatus)
	}{
		{name: "first transient failure: retried fast, Reconciling",
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonProviderUnavailable, Message: "down"},
			attempts: 1, retryIn: 5 * time.Second},
		{name: "third transient failure: the backoff doubles",
			status:   failedBefore(tokensyncv1alpha1.ReasonProviderUnavailable, 2),
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonProviderUnavailable, Message: "down"},
			attempts: 3, retryIn: 20 * time.Second},
		{name: "the retry is clamped to two seconds before the stored token expires",
			status: failedBefore(tokensyncv1alpha1.ReasonProviderUnavailable, 4), obs: []func(*Observation){holding(30 * time.Second)},
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonProviderUnavailable, Message: "down"},
			attempts: 5, retryIn: 28 * time.Second,
			check: func(t *testing.T, st tokensyncv1alpha1.TokenStatus) {
				if c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady); !strings.Contains(c.Message, "stays valid until") {
					t.Errorf("message %q does not say the token stays valid", c.Message)
				}
			}},
		{name: "host down: no retry of its own; it may join the host's line after the minimum login interval",
			status: failedBefore(tokensyncv1alpha1.ReasonProviderUnavailable, 4), obs: []func(*Observation){holding(30 * time.Second), hostDown},
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonProviderUnavailable, Message: "down"},
			attempts: 5, retryIn: DefaultMinLoginInterval,
			check: func(t *testing.T, st tokensyncv1alpha1.TokenStatus) {
				c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady)
				if !hasSubstrings(c.Message, "down; ", "stays valid until", "(attempt 5; provider host partner.example is down", "the next probe is at "+FormatTime(t0.Add(40*time.Second))) {
					t.Errorf("message %q does not name the host and its next probe", c.Message)
				}
			}},
		{name: "host down: a rejected password keeps its own backoff",
			obs:      []func(*Observation){hostDown},
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonAuthenticationFailed, Message: "rejected"},
			attempts: 1, lockout: 1, retryIn: time.Minute, stalled: true},
		{name: "Retry-After keeps its time",
			obs:      []func(*Observation){holding(30 * time.Second)},
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonProviderUnavailable, Message: "busy", RetryAfter: 10 * time.Minute},
			attempts: 1, retryIn: 10 * time.Minute},
		{name: "the slow class keeps its time, and stalls from the first",
			obs:      []func(*Observation){holding(30 * time.Second)},
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonInvalidCredentials, Message: "400"},
			attempts: 1, retryIn: time.Minute, stalled: true},
		{name: "a first rejected password: slow, stalled, one toward the lockout",
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonAuthenticationFailed, Message: "401"},
			attempts: 1, lockout: 1, retryIn: time.Minute, stalled: true},
		{name: "the third rejected password in a row: stopped",
			status:   failedBefore(tokensyncv1alpha1.ReasonAuthenticationFailed, 2),
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonAuthenticationFailed, Message: "401"},
			attempts: 3, lockout: 3, stalled: true,
			check: func(t *testing.T, st tokensyncv1alpha1.TokenStatus) {
				if c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady); !strings.Contains(c.Message, "avoid locking the account") {
					t.Errorf("message %q does not say why it stopped", c.Message)
				}
			}},
		{name: "a rejected password after an outage starts the lockout count afresh",
			status:   failedBefore(tokensyncv1alpha1.ReasonProviderUnavailable, 2),
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonAuthenticationFailed, Message: "401"},
			attempts: 3, lockout: 1, retryIn: 4 * time.Minute, stalled: true},
		{name: "a request blocked in front of the provider: slow, not Stalled, no step toward the lockout",
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonRequestBlocked, Message: "HTTP 403 with a text/html answer"},
			attempts: 1, lockout: 0, retryIn: time.Minute},
		{name: "the fifth blocked request: still retried, slower",
			status:   failedBefore(tokensyncv1alpha1.ReasonRequestBlocked, 4),
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonRequestBlocked, Message: "HTTP 403 with a text/html answer"},
			attempts: 5, lockout: 0, retryIn: 16 * time.Minute},
		{name: "a blocked request after two rejected passwords keeps their count",
			status:   failedBefore(tokensyncv1alpha1.ReasonAuthenticationFailed, 2),
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonRequestBlocked, Message: "HTTP 403 with an empty answer"},
			attempts: 3, lockout: 2, retryIn: 4 * time.Minute},
		{name: "a rejected password after blocked requests continues the count they kept: the third stops",
			status: func() tokensyncv1alpha1.TokenStatus {
				st := failedBefore(tokensyncv1alpha1.ReasonRequestBlocked, 4)
				st.LastAttempt.AuthenticationFailures = 2
				return st
			}(),
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonAuthenticationFailed, Message: "401"},
			attempts: 5, lockout: 3, stalled: true},
		{name: "a blocked request after a lockout's count does not stop by itself",
			status: func() tokensyncv1alpha1.TokenStatus {
				st := failedBefore(tokensyncv1alpha1.ReasonAuthenticationFailed, 3)
				st.LastAttempt.AuthenticationFailures = 3
				return st
			}(),
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonRequestBlocked, Message: "HTTP 401 with an empty answer"},
			attempts: 4, lockout: 3, retryIn: 8 * time.Minute},
		{name: "a stop: no retry scheduled",
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonSecretConflict, Message: SecretConflictMessage("TokenRequest", "tok")},
			attempts: 1, stalled: true},
		{name: "the same stop seen again is not another attempt",
			status:   failedBefore(tokensyncv1alpha1.ReasonSecretConflict, 1),
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonSecretConflict, Message: SecretConflictMessage("TokenRequest", "tok")},
			attempts: 1, stalled: true,
			check: func(t *testing.T, st tokensyncv1alpha1.TokenStatus) {
				if !st.LastAttempt.Time.Time.Equal(t0.Add(-time.Minute)) {
					t.Errorf("the attempt time moved to %s", st.LastAttempt.Time)
				}
			}},
		{name: "the same stop after a spec edit counts again",
			status: func() tokensyncv1alpha1.TokenStatus {
				st := failedBefore(tokensyncv1alpha1.ReasonInvalidTemplate, 1)
				st.ObservedGeneration = 1
				return st
			}(),
			failure:  TemplateFailure("spec.secretTemplate.data[\"x\"]: does not parse"),
			attempts: 2, stalled: true},
		{name: "a force-refresh honoured by a failed login is recorded, with the login's own credentials",
			failure: Failure{Reason: tokensyncv1alpha1.ReasonProviderUnavailable, Message: "down", Force: &force,
				Credentials: &CredentialsState{Found: true, Version: "9", Fingerprint: "k:two"}},
			attempts: 1, retryIn: 5 * time.Second,
			check: func(t *testing.T, st tokensyncv1alpha1.TokenStatus) {
				if st.LastForceRefresh != force || st.LastAttempt.CredentialsVersion != "9" || st.LastAttempt.CredentialsFingerprint != "k:two" {
					t.Errorf("force %q, attempt %+v", st.LastForceRefresh, st.LastAttempt)
				}
			}},
		{name: "a missing credentials Secret says so in its own condition",
			obs:      []func(*Observation){func(o *Observation) { o.Credentials = CredentialsState{} }},
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonCredentialsNotFound, Message: "not found"},
			attempts: 1, retryIn: 5 * time.Second,
			check: func(t *testing.T, st tokensyncv1alpha1.TokenStatus) {
				if !meta.IsStatusConditionFalse(st.Conditions, tokensyncv1alpha1.ConditionCredentialsFound) {
					t.Error("no CredentialsFound=False")
				}
			}},
		{name: "a refused write keeps the retry it was given",
			failure:  Failure{Reason: tokensyncv1alpha1.ReasonSecretWriteFailed, Message: "quota", RetryAt: t0.Add(42 * time.Second)},
			attempts: 1, retryIn: 42 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := obs()
			for _, c := range tt.obs {
				c(o)
			}
			before := tt.status.DeepCopy()
			st, retryAt, stopped := AfterFailure(tt.status, o, tt.failure, t0, 0)
			if st.FailedAttempts != tt.attempts || st.LastAttempt.AuthenticationFailures != tt.lockout || st.LastAttempt.Result != tt.failure.Reason {
				t.Errorf("attempts %d, lockout count %d, result %s; want %d, %d, %s", st.FailedAttempts, st.LastAttempt.AuthenticationFailures, st.LastAttempt.Result, tt.attempts, tt.lockout, tt.failure.Reason)
			}
			if stopped != (tt.retryIn == 0) {
				t.Errorf("stopped = %v, want %v", stopped, tt.retryIn == 0)
			}
			if tt.retryIn != 0 && (!retryAt.Equal(t0.Add(tt.retryIn)) || st.NextRefreshTime == nil || !st.NextRefreshTime.Time.Equal(retryAt)) {
				t.Errorf("retry in %s (status %v), want %s", retryAt.Sub(t0), st.NextRefreshTime, tt.retryIn)
			}
			if tt.retryIn == 0 && st.NextRefreshTime != nil {
				t.Errorf("a stop scheduled a retry at %s", st.NextRefreshTime)
			}
			ready := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady)
			if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != tt.failure.Reason || ready.ObservedGeneration != 2 || st.ObservedGeneration != 2 {
				t.Errorf("Ready %+v, observedGeneration %d", ready, st.ObservedGeneration)
			}
			stalled := meta.IsStatusConditionTrue(st.Conditions, tokensyncv1alpha1.ConditionStalled)
			reconciling := meta.IsStatusConditionTrue(st.Conditions, tokensyncv1alpha1.ConditionReconciling)
			if wantStalled := tt.stalled || stopped; stalled != wantStalled || reconciling == wantStalled {
				t.Errorf("Stalled %v, Reconciling %v; want Stalled %v and Reconciling the opposite", stalled, reconciling, wantStalled)
			}
			if !equalStatus(&tt.status, before) {
				t.Error("afterFailure changed the status it was given")
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

// TestAfterSuccess: a valid token clears failures and conditions; a short
// window warns once; a missing credentials Secret is said, not failed.
func TestAfterSuccess(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	o := &Observation{Generation: 3, SecretName: "tok"}
	failed, _, _ := AfterFailure(tokensyncv1alpha1.TokenStatus{}, &Observation{Generation: 2, Provider: "partner"},
		Failure{Reason: tokensyncv1alpha1.ReasonAuthenticationFailed, Message: "401"}, t0, 0)
	attempt := &tokensyncv1alpha1.LoginAttempt{Time: metav1.NewTime(t0), Provider: "partner", Result: tokensyncv1alpha1.ReasonSucceeded}
	long := HealthyToken{ObtainedAt: t0, ExpiresAt: t0.Add(time.Hour), Next: t0.Add(55 * time.Minute), Attempt: attempt, Force: "f-1"}

	st, warning := AfterSuccess(failed, o, long, t0)
	if st.FailedAttempts != 0 || *st.LastAttempt != *attempt || st.LastForceRefresh != "f-1" || st.ObservedGeneration != 3 || st.SecretName != "tok" ||
		!st.ExpiresAt.Time.Equal(t0.Add(time.Hour)) || !st.NextRefreshTime.Time.Equal(t0.Add(55*time.Minute)) || warning != "" {
		t.Errorf("after a login: %+v, warning %q", st, warning)
	}
	if !meta.IsStatusConditionTrue(st.Conditions, tokensyncv1alpha1.ConditionReady) ||
		meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionStalled) != nil ||
		meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReconciling) != nil {
		t.Errorf("conditions %+v, want Ready True alone", st.Conditions)
	}

	// No login (a kept token): the last attempt and force value stay.
	kept, _ := AfterSuccess(st, o, HealthyToken{ObtainedAt: t0, ExpiresAt: t0.Add(time.Hour), Next: t0.Add(55 * time.Minute), CredentialsMissing: "gone"}, t0)
	if *kept.LastAttempt != *attempt || kept.LastForceRefresh != "f-1" || !meta.IsStatusConditionFalse(kept.Conditions, tokensyncv1alpha1.ConditionCredentialsFound) {
		t.Errorf("kept token: %+v", kept)
	}

	// A 90-second token: the window is under a minute; warned once.
	short := HealthyToken{ObtainedAt: t0, ExpiresAt: t0.Add(90 * time.Second), Next: t0.Add(60 * time.Second)}
	st, warning = AfterSuccess(st, o, short, t0)
	if warning == "" || !strings.Contains(warning, shortWindowWarning) {
		t.Errorf("no warning for a 30 s window: %q", warning)
	}
	if _, again := AfterSuccess(st, o, short, t0); again != "" {
		t.Errorf("warned twice: %q", again)
	}

	// A token that lives less than the minimum login interval is written
	// all the same, and Ready says so and when the next login may start.
	withInterval := *o
	withInterval.MinLoginInterval = 10 * time.Second
	brief := HealthyToken{ObtainedAt: t0, ExpiresAt: t0.Add(4 * time.Second), Next: t0.Add(3 * time.Second)}
	st, _ = AfterSuccess(st, &withInterval, brief, t0)
	if c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue ||
		!strings.Contains(c.Message, "lives 4s, shorter than the minimum login interval of 10s") || !strings.Contains(c.Message, FormatTime(t0.Add(10*time.Second))) {
		t.Errorf("Ready for a 4 s token with a 10 s interval: %+v", c)
	}
	for _, h := range []HealthyToken{long, short} {
		st, _ = AfterSuccess(st, &withInterval, h, t0)
		if c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady); strings.Contains(c.Message, "--min-login-interval") {
			t.Errorf("Ready for a token that outlives the interval names it: %q", c.Message)
		}
	}
}

func equalStatus(a, b *tokensyncv1alpha1.TokenStatus) bool {
	return a.FailedAttempts == b.FailedAttempts && len(a.Conditions) == len(b.Conditions) && (a.LastAttempt == nil) == (b.LastAttempt == nil) &&
		(a.LastAttempt == nil || *a.LastAttempt == *b.LastAttempt)
}

// TestAfterWaitingOnHost: a TokenRequest whose login waits on its down
// host reports ProviderUnavailable, naming the host and its next probe,
// with that probe as its next refresh; no attempt is recorded.
func TestAfterWaitingOnHost(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	last := &tokensyncv1alpha1.LoginAttempt{Time: metav1.NewTime(t0.Add(-time.Hour)), Result: tokensyncv1alpha1.ReasonSucceeded}
	before := tokensyncv1alpha1.TokenStatus{LastAttempt: last, ObservedGeneration: 1, Conditions: []metav1.Condition{
		{Type: tokensyncv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: tokensyncv1alpha1.ReasonTokenIssued, Message: "ok"},
	}}
	o := &Observation{Now: t0, Generation: 2, SecretName: "tok",
		Target: TargetState{Exists: true, Holds: true, Held: HeldToken{ExpiresAt: t0.Add(time.Minute), Intact: true}},
		Host:   HostView{Name: "p.example", Down: true, NextProbe: t0.Add(20 * time.Second)}}
	st := AfterWaitingOnHost(before, o, "the token is due for refresh; "+o.Host.WaitMessage(), t0)
	ready := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionFalse || ready.Reason != tokensyncv1alpha1.ReasonProviderUnavailable ||
		!hasSubstrings(ready.Message, "due for refresh", "provider host p.example is down", FormatTime(t0.Add(20*time.Second)), "stays valid until "+FormatTime(t0.Add(time.Minute))) {
		t.Errorf("Ready %+v", ready)
	}
	if !meta.IsStatusConditionTrue(st.Conditions, tokensyncv1alpha1.ConditionReconciling) || meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionStalled) != nil {
		t.Errorf("conditions %+v, want Reconciling and not Stalled", st.Conditions)
	}
	if st.NextRefreshTime == nil || !st.NextRefreshTime.Time.Equal(t0.Add(20*time.Second)) || st.ObservedGeneration != 2 {
		t.Errorf("nextRefreshTime %v, observedGeneration %d; want the next probe, 2", st.NextRefreshTime, st.ObservedGeneration)
	}
	if st.LastAttempt == nil || *st.LastAttempt != *last || st.FailedAttempts != 0 {
		t.Errorf("an attempt was recorded: %+v, %d failed", st.LastAttempt, st.FailedAttempts)
	}
	if c := meta.FindStatusCondition(before.Conditions, tokensyncv1alpha1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Error("afterWaitingOnHost changed the status it was given")
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
