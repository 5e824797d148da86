package policy

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The status bookkeeping beside decide: what a failure or a success makes
// of a TokenRequest's status, as pure functions of the status, the
// observation and the time. The reconciler computes, then writes
// (statuswriter.go); on a conflict it computes again from the fresh status,
// so attempt counts never come from a stale cache.

// Failure is a failed attempt to obtain or store a token.
type Failure struct {
	Reason, Message string
	// Result, when set, is what status.lastAttempt.Result records and the
	// failure rule is read for, where it says more than reason (the
	// condition's): ResultSecretTooLarge is a SecretWriteFailed that stops.
	Result string
	// RetryAfter is the provider's hint.
	RetryAfter time.Duration
	// RetryAt, when set, is the retry already scheduled (a pending write).
	RetryAt time.Time
	// Credentials and force, when set, are what a login made off the
	// workers was made with; otherwise the observation's.
	Credentials *CredentialsState
	Force       *string
}

// AfterFailure is the status after failure f: the attempt recorded (a
// stopped state seen again is not another attempt), consecutive
// authentication failures counted (tokensyncv1alpha1.MaxAuthenticationFailures of them stop
// every login; a failure that kept the credentials from being judged
// leaves the count as it was), the next retry scheduled by the reason's class (none when
// it stops until a change), and the conditions: Ready False, Stalled when a
// person must act, Reconciling while retried. It returns the new status,
// the retry and whether the TokenRequest is stopped until a fixing change.
func AfterFailure(st tokensyncv1alpha1.TokenStatus, o *Observation, f Failure, now time.Time, jitter float64) (tokensyncv1alpha1.TokenStatus, time.Time, bool) {
	st = *st.DeepCopy()
	result := f.Reason
	if f.Result != "" {
		result = f.Result
	}
	rule := RuleOf(result)
	creds, force := o.Credentials, o.Force
	if f.Credentials != nil {
		creds = *f.Credentials
	}
	if f.Force != nil {
		force = *f.Force
	}
	validUntil, tokenValidUntil := "", time.Time{}
	if h := o.Target.Held; o.Target.Holds && h.Intact && now.Before(h.ExpiresAt) {
		validUntil = "; " + StillValid(o.SecretName, FormatTime(h.ExpiresAt))
		tokenValidUntil = h.ExpiresAt
	}

	last := st.LastAttempt
	repeat := last != nil && last.Result == result && st.FailedAttempts > 0 &&
		last.Provider == o.Provider && last.Endpoint == o.Endpoint &&
		rule.StopsUntilChange && o.Generation == st.ObservedGeneration
	attempts := st.FailedAttempts + 1
	if repeat {
		attempts = st.FailedAttempts
	}
	lockoutCount := int32(0)
	switch {
	case rule.CountsTowardLockout:
		lockoutCount = 1
		if last != nil && (last.Result == result || RuleOf(last.Result).KeepsLockoutCount) {
			lockoutCount = last.AuthenticationFailures + 1
		}
	case rule.KeepsLockoutCount && last != nil:
		lockoutCount = last.AuthenticationFailures
	}
	lockedOut := rule.CountsTowardLockout && lockoutCount >= tokensyncv1alpha1.MaxAuthenticationFailures
	stopped := rule.StopsUntilChange || lockedOut
	attemptAt := metav1.NewTime(now.UTC().Truncate(time.Second))
	if repeat {
		attemptAt = last.Time
	}
	retryAt := f.RetryAt
	if retryAt.IsZero() {
		retryAt = RetryTime(now, result, attempts, jitter, f.RetryAfter, tokenValidUntil)
	}
	// While its host is down, a TokenRequest does not retry on its own
	// schedule: it waits on the host, whose line it joins as soon as its
	// minimum login interval allows.
	waitsOnHost := o.Host.Down && result == tokensyncv1alpha1.ReasonProviderUnavailable
	if waitsOnHost {
		retryAt = Latest(now, attemptAt.Add(o.MinLoginInterval))
	}

	message := f.Message + validUntil
	switch {
	case lockedOut:
		message += fmt.Sprintf(" (%d consecutive authentication failures: stopped to avoid locking the account; nothing more is sent until the credentials' content, spec.provider or spec.endpoint, or the %s annotation changes)",
			lockoutCount, tokensyncv1alpha1.AnnotationForceRefresh)
	case stopped:
		message += " (nothing more is tried until this is fixed)"
	case waitsOnHost:
		message += fmt.Sprintf(" (attempt %d; %s)", attempts, o.Host.WaitMessage())
	default:
		message += fmt.Sprintf(" (attempt %d, next retry at %s)", attempts, FormatTime(retryAt))
	}

	st.ObservedGeneration = o.Generation
	st.FailedAttempts = attempts
	st.NextRefreshTime = MetaTime(retryAt)
	if stopped {
		st.NextRefreshTime = nil
	}
	if force != "" {
		st.LastForceRefresh = force
	}
	st.LastAttempt = &tokensyncv1alpha1.LoginAttempt{
		Time: attemptAt, Provider: o.Provider, Endpoint: o.Endpoint,
		CredentialsVersion: creds.Version, CredentialsFingerprint: creds.Fingerprint,
		SettingsDigest: o.SettingsDigest, Result: result, AuthenticationFailures: lockoutCount,
	}
	SetCondition(&st, o.Generation, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionFalse, f.Reason, message)
	if rule.Stalls || stopped {
		SetCondition(&st, o.Generation, now, tokensyncv1alpha1.ConditionStalled, metav1.ConditionTrue, f.Reason, message)
		RemoveCondition(&st, tokensyncv1alpha1.ConditionReconciling)
	} else {
		SetCondition(&st, o.Generation, now, tokensyncv1alpha1.ConditionReconciling, metav1.ConditionTrue, tokensyncv1alpha1.ReasonRetrying, message)
		RemoveCondition(&st, tokensyncv1alpha1.ConditionStalled)
	}
	if f.Reason == tokensyncv1alpha1.ReasonCredentialsNotFound {
		SetCondition(&st, o.Generation, now, tokensyncv1alpha1.ConditionCredentialsFound, metav1.ConditionFalse, f.Reason, f.Message)
	} else if creds.Found {
		RemoveCondition(&st, tokensyncv1alpha1.ConditionCredentialsFound)
	}
	return st, retryAt, stopped
}

// AfterWaitingOnHost is the status of a TokenRequest whose login waits on
// its down host (message: why the login is due, and on what it waits):
// Ready False with ProviderUnavailable, as a failed attempt has it, the
// next refresh the host's next probe. No attempt is recorded: none was
// made, and the minimum login interval counts none.
func AfterWaitingOnHost(st tokensyncv1alpha1.TokenStatus, o *Observation, message string, now time.Time) tokensyncv1alpha1.TokenStatus {
	st = *st.DeepCopy()
	if h := o.Target.Held; o.Target.Holds && h.Intact && now.Before(h.ExpiresAt) {
		message += "; " + StillValid(o.SecretName, FormatTime(h.ExpiresAt))
	}
	st.ObservedGeneration = o.Generation
	st.NextRefreshTime = MetaTime(o.Host.NextProbe)
	SetCondition(&st, o.Generation, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionFalse, tokensyncv1alpha1.ReasonProviderUnavailable, message)
	SetCondition(&st, o.Generation, now, tokensyncv1alpha1.ConditionReconciling, metav1.ConditionTrue, tokensyncv1alpha1.ReasonRetrying, message)
	RemoveCondition(&st, tokensyncv1alpha1.ConditionStalled)
	return st
}

// shortWindowWarning starts the Ready message's warning about a refresh
// window too short for mounted Secret volumes.
const shortWindowWarning = "the refresh window is only"

// HealthyToken is what afterSuccess records.
type HealthyToken struct {
	ObtainedAt, ExpiresAt, Next time.Time
	// Attempt is the successful login that obtained the token, nil when no
	// login happened; force is the force-refresh value it honoured.
	Attempt *tokensyncv1alpha1.LoginAttempt
	Force   string
	// CredentialsMissing, when set, says that the credentials Secret is
	// gone while the token stays valid.
	CredentialsMissing string
}

// AfterSuccess is the status once the target Secret holds a valid token:
// failures cleared, the token's times and the next refresh recorded, Ready
// True, Stalled and Reconciling removed. warning is the message of a
// ShortRefreshWindow event to record, when the window became too short for
// mounted Secret volumes; empty otherwise.
func AfterSuccess(st tokensyncv1alpha1.TokenStatus, o *Observation, h HealthyToken, now time.Time) (_ tokensyncv1alpha1.TokenStatus, warning string) {
	st = *st.DeepCopy()
	message := fmt.Sprintf("Secret %s holds a valid token until %s; next refresh at %s", o.SecretName, FormatTime(h.ExpiresAt), FormatTime(h.Next))
	window := RefreshWindow(h.ObtainedAt, h.ExpiresAt, o.RefreshBefore)
	short := window < mountedVolumeDelay
	if short {
		message += fmt.Sprintf("; %s %s, under the minute the kubelet may take to update a mounted Secret volume: pods reading the token from a file may read an expired one (set spec.refreshBefore to at least 60s, with tokens that live at least 2 minutes)",
			shortWindowWarning, window.Round(time.Second))
	}
	if lives := h.ExpiresAt.Sub(h.ObtainedAt); o.MinLoginInterval > 0 && lives < o.MinLoginInterval {
		// Written all the same: a token valid for a while beats none.
		message += fmt.Sprintf("; the token lives %s, shorter than the minimum login interval of %s (--min-login-interval): the next login starts no sooner than %s, and the Secret holds an expired token until it is written",
			lives.Round(time.Second), o.MinLoginInterval, FormatTime(h.ObtainedAt.Add(o.MinLoginInterval)))
	}
	if c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady); short && (c == nil || !strings.Contains(c.Message, shortWindowWarning)) {
		warning = message
	}
	st.ObservedGeneration = o.Generation
	st.SecretName = o.SecretName
	st.ExpiresAt = MetaTime(h.ExpiresAt)
	st.LastRefreshTime = MetaTime(h.ObtainedAt)
	st.NextRefreshTime = MetaTime(h.Next)
	st.FailedAttempts = 0
	if h.Attempt != nil {
		st.LastAttempt = h.Attempt
		if h.Force != "" {
			st.LastForceRefresh = h.Force
		}
	}
	SetCondition(&st, o.Generation, now, tokensyncv1alpha1.ConditionReady, metav1.ConditionTrue, tokensyncv1alpha1.ReasonTokenIssued, message)
	RemoveCondition(&st, tokensyncv1alpha1.ConditionStalled)
	RemoveCondition(&st, tokensyncv1alpha1.ConditionReconciling)
	if h.CredentialsMissing != "" {
		SetCondition(&st, o.Generation, now, tokensyncv1alpha1.ConditionCredentialsFound, metav1.ConditionFalse, tokensyncv1alpha1.ReasonCredentialsNotFound, h.CredentialsMissing)
	} else {
		RemoveCondition(&st, tokensyncv1alpha1.ConditionCredentialsFound)
	}
	return st, warning
}

func SetCondition(st *tokensyncv1alpha1.TokenStatus, generation int64, now time.Time, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
		LastTransitionTime: metav1.NewTime(now.UTC().Truncate(time.Second)),
	})
}

func RemoveCondition(st *tokensyncv1alpha1.TokenStatus, typ string) {
	meta.RemoveStatusCondition(&st.Conditions, typ)
}
