package policy

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// The decision table: one row per trigger and per case the envtest suite
// exercises, each a change to a healthy TokenRequest.
func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const (
		fp1        = "k1:credentials-one"
		fp2        = "k1:credentials-two"
		fpOtherKey = "k9:credentials-one"
		endpoint   = "https://sandbox.partner.example"
	)
	healthy := func() Observation {
		return Observation{
			Now: t0, UID: "uid-1", Generation: 1,
			Provider: "partner", ProviderKnown: true, Endpoint: endpoint, SecretName: "tok",
			Target: TargetState{Exists: true, Holds: true, Held: HeldToken{
				ObtainedAt: t0.Add(-10 * time.Minute), ExpiresAt: t0.Add(50 * time.Minute),
				Provider: "partner", Endpoint: endpoint, CredentialsVersion: "7", CredentialsFingerprint: fp1, Intact: true,
			}},
			Credentials: CredentialsState{Found: true, Allowed: true, Version: "7", Fingerprint: fp1},
			Status: tokensyncv1alpha1.TokenStatus{
				SecretName: "tok",
				LastAttempt: &tokensyncv1alpha1.LoginAttempt{
					Provider: "partner", Endpoint: endpoint, CredentialsVersion: "7", CredentialsFingerprint: fp1, Result: tokensyncv1alpha1.ReasonSucceeded,
				},
			},
		}
	}
	// failedWith records n consecutive failures with reason, the last at t0,
	// next retry at t0+retryIn.
	failedWith := func(reason string, n int32, retryIn time.Duration) func(*Observation) {
		return func(o *Observation) {
			o.Status.FailedAttempts = n
			o.Status.ObservedGeneration = o.Generation // as failed() records it
			next := metav1.NewTime(t0.Add(retryIn))
			o.Status.NextRefreshTime = &next
			auth := int32(0)
			if reason == tokensyncv1alpha1.ReasonAuthenticationFailed {
				auth = n
			}
			o.Status.LastAttempt = &tokensyncv1alpha1.LoginAttempt{
				Provider: o.Provider, Endpoint: o.Endpoint, SettingsDigest: o.SettingsDigest, CredentialsVersion: o.Credentials.Version,
				CredentialsFingerprint: o.Credentials.Fingerprint, Result: reason, AuthenticationFailures: auth,
			}
		}
	}
	noSecret := func(o *Observation) { o.Target = TargetState{} }
	// withSettings records held as the digest the token and the last
	// attempt were obtained with, and current as the spec's.
	withSettings := func(held, current string) func(*Observation) {
		return func(o *Observation) {
			o.Target.Held.SettingsDigest, o.SettingsDigest = held, current
			if o.Status.LastAttempt != nil {
				o.Status.LastAttempt.SettingsDigest = held
			}
		}
	}
	refreshTime := func() time.Time { o := healthy(); return o.refreshAt() }()
	// lastLoginAgo records the last attempt ago before t0, with the default
	// minimum login interval.
	lastLoginAgo := func(ago time.Duration) func(*Observation) {
		return func(o *Observation) {
			o.MinLoginInterval = DefaultMinLoginInterval
			o.Status.LastAttempt.Time = metav1.NewTime(t0.Add(-ago))
		}
	}
	// waitsUntil checks a wait for the minimum login interval's end.
	waitsUntil := func(at time.Time) func(*testing.T, Decision) {
		return func(t *testing.T, d Decision) {
			if !d.At.Equal(at) {
				t.Errorf("wait until %s, want %s", d.At, at)
			}
			if !strings.Contains(d.Message, "--min-login-interval") || !strings.Contains(d.Message, FormatTime(at)) {
				t.Errorf("message %q does not say the interval and its end", d.Message)
			}
		}
	}
	// shortToken: the held token lives 5 s, obtained by the last login 4 s
	// before t0: its refresh is due inside the interval.
	shortToken := func(o *Observation) {
		o.Target.Held.ObtainedAt, o.Target.Held.ExpiresAt = t0.Add(-4*time.Second), t0.Add(time.Second)
		lastLoginAgo(4 * time.Second)(o)
	}

	// hostDown: the endpoint's host is down, its next probe in 30 s;
	// waitsOnHost: the login waits in its line.
	hostDown := func(o *Observation) {
		o.Host = HostView{Name: "sandbox.partner.example", Down: true, NextProbe: t0.Add(30 * time.Second)}
	}
	waitsOnHost := func(o *Observation) { o.LoginInFlight, o.WaitsOnHost = true, true }
	probeAsked := func(t *testing.T, d Decision) {
		if !d.NextProbe {
			t.Error("the login is not asked to be the host's next probe")
		}
	}
	noProbeAsked := func(t *testing.T, d Decision) {
		if d.NextProbe {
			t.Error("the login is asked to be the host's next probe")
		}
	}

	tests := []struct {
		name   string
		change []func(*Observation)
		action Action
		reason string
		check  func(*testing.T, Decision)
	}{
		{name: "valid token: keep until the refresh", action: ActKeep, reason: reasonValid,
			check: func(t *testing.T, d Decision) {
				if !d.At.Equal(refreshTime) || d.CredentialsMissing {
					t.Errorf("keep until %s (missing %v), want %s", d.At, d.CredentialsMissing, refreshTime)
				}
			}},
		{name: "a second before the refresh: keep", change: []func(*Observation){func(o *Observation) { o.Now = refreshTime.Add(-time.Second) }},
			action: ActKeep},
		{name: "refresh time reached", change: []func(*Observation){func(o *Observation) { o.Now = refreshTime }},
			action: ActLogin, reason: triggerRefreshDue},
		{name: "token expired", change: []func(*Observation){func(o *Observation) { o.Now = t0.Add(51 * time.Minute) }},
			action: ActLogin, reason: triggerExpired},
		{name: "new TokenRequest: no Secret", change: []func(*Observation){noSecret}, action: ActLogin, reason: triggerSecretMissing},
		{name: "Secret without bookkeeping", change: []func(*Observation){func(o *Observation) { o.Target.Holds = false }},
			action: ActLogin, reason: triggerNoToken},
		{name: "token edited by hand", change: []func(*Observation){func(o *Observation) { o.Target.Held.Intact = false }},
			action: ActLogin, reason: triggerTokenEdited},
		{name: "spec.endpoint sandbox -> production", change: []func(*Observation){func(o *Observation) { o.Endpoint = "https://partner.example" }},
			action: ActLogin, reason: triggerIssuerChanged},
		{name: "spec.provider changed", change: []func(*Observation){func(o *Observation) { o.Provider = "aml" }},
			action: ActLogin, reason: triggerIssuerChanged},
		{name: "issuer not recorded (older tokensync): no login on upgrade",
			change: []func(*Observation){func(o *Observation) { o.Target.Held.Provider, o.Target.Held.Endpoint = "", "" }}, action: ActKeep},
		{name: "credentials content changed", change: []func(*Observation){func(o *Observation) { o.Credentials.Version, o.Credentials.Fingerprint = "8", fp2 }},
			action: ActLogin, reason: triggerCredentialsChanged},
		{name: "credentials label, annotation or replace: new version, same content",
			change: []func(*Observation){func(o *Observation) { o.Credentials.Version = "8" }}, action: ActKeep},
		{name: "fingerprint key replaced: cannot compare, no login",
			change: []func(*Observation){func(o *Observation) { o.Credentials.Version, o.Credentials.Fingerprint = "8", fpOtherKey }}, action: ActKeep},
		{name: "token of an older tokensync: new credentials version still counts",
			change: []func(*Observation){func(o *Observation) {
				o.Target.Held.CredentialsFingerprint = ""
				o.Credentials.Version = "8"
			}}, action: ActLogin, reason: triggerCredentialsChanged},
		{name: "new force-refresh value", change: []func(*Observation){func(o *Observation) { o.Force = "2026-11-22" }},
			action: ActLogin, reason: triggerForceRefresh},
		{name: "force-refresh value already honoured", change: []func(*Observation){func(o *Observation) { o.Force, o.Status.LastForceRefresh = "x", "x" }},
			action: ActKeep},
		{name: "Secret missing wins over a force in the reason", change: []func(*Observation){noSecret, func(o *Observation) { o.Force = "y" }},
			action: ActLogin, reason: triggerSecretMissing},

		// Provider settings (spec.oauth2, spec.http) count like the issuer.
		{name: "same provider settings: keep", change: []func(*Observation){withSettings("sha256:one", "sha256:one")}, action: ActKeep},
		{name: "provider settings changed: log in at once", change: []func(*Observation){withSettings("sha256:one", "sha256:two")},
			action: ActLogin, reason: triggerIssuerChanged, check: func(t *testing.T, d Decision) {
				if !strings.Contains(d.Message, "provider settings") {
					t.Errorf("message %q does not name the settings", d.Message)
				}
			}},
		{name: "settings digest not recorded (older tokensync): no login on upgrade",
			change: []func(*Observation){withSettings("", "sha256:one")}, action: ActKeep},
		{name: "settings removed (another provider): the provider change decides",
			change: []func(*Observation){withSettings("sha256:one", ""), func(o *Observation) { o.Provider = "aml" }},
			action: ActLogin, reason: triggerIssuerChanged},
		{name: "bad template, settings unchanged: stopped until a change",
			change: []func(*Observation){noSecret, withSettings("sha256:one", "sha256:one"), failedWith(tokensyncv1alpha1.ReasonInvalidTemplate, 1, -time.Hour)},
			action: ActStop, reason: tokensyncv1alpha1.ReasonInvalidTemplate},
		{name: "bad template, the key it reads added to the credentials: at once",
			change: []func(*Observation){noSecret, withSettings("sha256:one", "sha256:one"), failedWith(tokensyncv1alpha1.ReasonInvalidTemplate, 1, time.Minute),
				func(o *Observation) { o.Credentials.Version, o.Credentials.Fingerprint = "9", fp2 }},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "bad template, settings fixed: at once",
			change: []func(*Observation){noSecret, withSettings("sha256:one", "sha256:one"), failedWith(tokensyncv1alpha1.ReasonInvalidTemplate, 1, time.Minute),
				func(o *Observation) { o.SettingsDigest = "sha256:two" }},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "failed attempt without a recorded digest: settings unknown, still stopped",
			change: []func(*Observation){noSecret, withSettings("sha256:one", "sha256:one"), failedWith(tokensyncv1alpha1.ReasonInvalidTemplate, 1, time.Minute),
				func(o *Observation) { o.Status.LastAttempt.SettingsDigest, o.SettingsDigest = "", "sha256:two" }},
			action: ActStop},
		{name: "rejected password, settings changed: at once",
			change: []func(*Observation){noSecret, withSettings("sha256:one", "sha256:one"), failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 3, -time.Hour),
				func(o *Observation) { o.SettingsDigest = "sha256:two" }},
			action: ActLogin},
		{name: "pending token from other settings: not written",
			change: []func(*Observation){noSecret, withSettings("sha256:one", "sha256:two"), func(o *Observation) {
				o.Pending = pendingFields{ExpiresAt: t0.Add(time.Hour), Provider: "partner", Endpoint: endpoint, SettingsDigest: "sha256:one", CredentialsFingerprint: fp1, RetryAt: t0}.token()
			}},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "secretName changed after a settings change: log in, not move",
			change: []func(*Observation){withSettings("sha256:one", "sha256:two"), func(o *Observation) {
				held := o.Target.Held
				o.Previous = &held
				o.SecretName = "renamed"
				o.Target = TargetState{}
			}},
			action: ActLogin, reason: triggerSecretMissing},

		// Failures and their backoff.
		{name: "failed refresh, token valid, in backoff: wait",
			change: []func(*Observation){failedWith(tokensyncv1alpha1.ReasonProviderUnavailable, 1, 5*time.Second)},
			action: ActWait, reason: reasonBackoff,
			check: func(t *testing.T, d Decision) {
				if !d.At.Equal(t0.Add(5 * time.Second)) {
					t.Errorf("wait until %s", d.At)
				}
			}},
		{name: "failed refresh, backoff over: retry although the token is valid",
			change: []func(*Observation){failedWith(tokensyncv1alpha1.ReasonProviderUnavailable, 1, -time.Second)},
			action: ActLogin, reason: triggerRetry},
		{name: "first login failed, in backoff",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonProviderUnavailable, 2, time.Minute)}, action: ActWait},
		{name: "rejected password, credentials metadata changed: still backed off",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 1, time.Minute), func(o *Observation) { o.Credentials.Version = "9" }},
			action: ActWait},
		{name: "rejected password, credentials content changed: at once",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 1, time.Minute), func(o *Observation) { o.Credentials.Version, o.Credentials.Fingerprint = "9", fp2 }},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "rejected password, new force-refresh: at once",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 1, time.Minute), func(o *Observation) { o.Force = "again" }},
			action: ActLogin},
		{name: "rejected password, endpoint changed: at once",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 1, time.Minute), func(o *Observation) { o.Endpoint = "https://other.example" }},
			action: ActLogin},
		{name: "rejected password, secretTemplate edited: backoff holds",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 1, time.Minute), func(o *Observation) { o.Generation = 2 }},
			action: ActWait},
		{name: "two rejected passwords, backoff over: third try",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 2, -time.Second)},
			action: ActLogin},
		{name: "three rejected passwords: stopped, even after the backoff",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 3, -time.Hour)},
			action: ActStop, reason: reasonLockedOut},
		{name: "three rejected passwords, credentials content changed: try again",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 3, -time.Hour), func(o *Observation) { o.Credentials.Version, o.Credentials.Fingerprint = "9", fp2 }},
			action: ActLogin},
		{name: "three rejected passwords, metadata-only change: still stopped",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 3, -time.Hour), func(o *Observation) { o.Credentials.Version = "9" }},
			action: ActStop},
		{name: "credentials Secret appeared after CredentialsNotFound: at once",
			change: []func(*Observation){noSecret, func(o *Observation) {
				failedWith(tokensyncv1alpha1.ReasonCredentialsNotFound, 4, time.Minute)(o)
				o.Status.LastAttempt.CredentialsVersion, o.Status.LastAttempt.CredentialsFingerprint = "", ""
			}},
			action: ActLogin},

		// Missing credentials.
		{name: "credentials Secret deleted, token valid: keep, say so", change: []func(*Observation){func(o *Observation) { o.Credentials = CredentialsState{} }},
			action: ActKeep, check: func(t *testing.T, d Decision) {
				if !d.CredentialsMissing {
					t.Error("CredentialsMissing not set")
				}
			}},
		{name: "credentials Secret deleted, token due: attempt (reported as CredentialsNotFound)",
			change: []func(*Observation){func(o *Observation) { o.Credentials = CredentialsState{}; o.Now = refreshTime }},
			action: ActLogin, reason: triggerRefreshDue},

		// Conflicts, policy and unknown providers.
		{name: "foreign Secret of that name", change: []func(*Observation){func(o *Observation) { o.Target = TargetState{Exists: true, Foreign: true} }},
			action: ActStop, reason: tokensyncv1alpha1.ReasonSecretConflict},
		{name: "foreign Secret deleted: at once, ignoring the backoff",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonSecretConflict, 1, time.Hour)},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "endpoint refused by policy, nothing changed: stopped",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonEndpointNotAllowed, 1, -time.Hour), func(o *Observation) { o.EndpointRefused = true }},
			action: ActStop},
		{name: "endpoint refused by policy, the policy now allows it (a restart with a wider allowlist): at once",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonEndpointNotAllowed, 1, time.Hour)},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "credentials not labelled, still not: stopped",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonCredentialsNotAllowed, 1, -time.Hour), func(o *Observation) { o.Credentials.Allowed = false }},
			action: ActStop, reason: tokensyncv1alpha1.ReasonCredentialsNotAllowed},
		{name: "credentials not labelled, label added: at once, ignoring the backoff",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonCredentialsNotAllowed, 1, time.Hour)},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "credentials label removed, token valid: keep (only the next login is stopped)",
			change: []func(*Observation){func(o *Observation) { o.Credentials.Allowed = false }},
			action: ActKeep, reason: reasonValid},

		// Logins off the workers.
		{name: "a login for this issuer under way, token due: wait for its end, no requeue",
			change: []func(*Observation){func(o *Observation) { o.Now = refreshTime; o.LoginInFlight = true }},
			action: ActWait, reason: ReasonLoginInFlight, check: func(t *testing.T, d Decision) {
				if !d.At.IsZero() {
					t.Errorf("a requeue at %s while the login's end reconciles anyway", d.At)
				}
			}},
		{name: "a login under way, token valid: keep",
			change: []func(*Observation){func(o *Observation) { o.LoginInFlight = true }},
			action: ActKeep, reason: reasonValid},
		{name: "a token just obtained: written with the login's reason",
			change: []func(*Observation){noSecret, func(o *Observation) {
				o.Pending = pendingFields{ExpiresAt: t0.Add(time.Hour), Provider: "partner", Endpoint: endpoint, CredentialsFingerprint: fp1,
					Reason: triggerSecretMissing, Message: "the target Secret tok does not exist"}.token()
			}},
			action: ActWrite, reason: triggerSecretMissing},
		{name: "endpoint refused by policy, endpoint changed: at once",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonEndpointNotAllowed, 1, time.Hour), func(o *Observation) { o.Endpoint = "https://allowed.example" }},
			action: ActLogin},
		{name: "provider unknown to this operator", change: []func(*Observation){func(o *Observation) { o.ProviderKnown = false }},
			action: ActStop, reason: tokensyncv1alpha1.ReasonUnsupportedProvider},

		// A token obtained whose write was refused.
		{name: "pending token, write retry not yet due: wait",
			change: []func(*Observation){noSecret, func(o *Observation) {
				o.Pending = pendingFields{ExpiresAt: t0.Add(time.Hour), Provider: "partner", Endpoint: endpoint, CredentialsFingerprint: fp1, RetryAt: t0.Add(10 * time.Second)}.token()
			}},
			action: ActWait, reason: tokensyncv1alpha1.ReasonSecretWriteFailed},
		{name: "pending token, retry due: write it, no login",
			change: []func(*Observation){noSecret, func(o *Observation) {
				o.Pending = pendingFields{ExpiresAt: t0.Add(time.Hour), Provider: "partner", Endpoint: endpoint, CredentialsFingerprint: fp1, WriteFailures: 1, RetryAt: t0}.token()
			}},
			action: ActWrite, reason: reasonPendingWrite},
		{name: "pending token from the old endpoint: not written",
			change: []func(*Observation){noSecret, func(o *Observation) {
				o.Pending = pendingFields{ExpiresAt: t0.Add(time.Hour), Provider: "partner", Endpoint: "https://old.example", CredentialsFingerprint: fp1, RetryAt: t0}.token()
			}},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "pending token expired, writes refused before: probe before a login",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonSecretWriteFailed, 5, -time.Second), func(o *Observation) {
				o.Pending = pendingFields{ExpiresAt: t0, Provider: "partner", Endpoint: endpoint, CredentialsFingerprint: fp1, RetryAt: t0}.token()
			}},
			action: ActLogin, check: func(t *testing.T, d Decision) {
				if !d.ProbeWrite {
					t.Error("no write probe before spending a login")
				}
			}},

		// Suspend and templates.
		{name: "suspended, token valid: nothing, say until when", change: []func(*Observation){func(o *Observation) { o.Suspended = true; o.Now = refreshTime }},
			action: ActSuspend, check: func(t *testing.T, d Decision) {
				if !d.At.Equal(t0.Add(50 * time.Minute)) {
					t.Errorf("suspended until %s, want the token's expiry", d.At)
				}
			}},
		{name: "suspended, Secret deleted and a force-refresh: still nothing",
			change: []func(*Observation){noSecret, func(o *Observation) { o.Suspended, o.Force = true, "now" }}, action: ActSuspend},
		{name: "a data template that does not parse: stop before any login",
			change: []func(*Observation){noSecret, func(o *Observation) { o.TemplateError = "spec.secretTemplate.data[\"x\"]: does not parse" }},
			action: ActStop, reason: tokensyncv1alpha1.ReasonInvalidTemplate},
		{name: "a data template that did not render, spec unchanged: stopped",
			change: []func(*Observation){noSecret, func(o *Observation) {
				failedWith(tokensyncv1alpha1.ReasonInvalidTemplate, 1, -time.Hour)(o)
				o.Status.ObservedGeneration = o.Generation
			}}, action: ActStop, reason: tokensyncv1alpha1.ReasonInvalidTemplate},
		{name: "a data template that did not render, spec edited: write the pending token",
			change: []func(*Observation){noSecret, func(o *Observation) {
				failedWith(tokensyncv1alpha1.ReasonInvalidTemplate, 1, -time.Hour)(o)
				o.Status.ObservedGeneration = o.Generation
				o.Generation++
				o.Pending = pendingFields{ExpiresAt: t0.Add(time.Hour), Provider: "partner", Endpoint: endpoint, CredentialsFingerprint: fp1,
					Reason: triggerSecretMissing, Message: "the target Secret tok does not exist"}.token()
			}}, action: ActWrite, reason: triggerSecretMissing},

		{name: "a data template fixed while the token is valid: keep, no login",
			change: []func(*Observation){func(o *Observation) {
				failedWith(tokensyncv1alpha1.ReasonInvalidTemplate, 1, -time.Hour)(o)
				o.Status.ObservedGeneration = o.Generation
				o.Generation++
			}}, action: ActKeep},

		// A token too large for its Secret: dropped, and stopped until the
		// spec changes or a refresh is forced, whatever else changes.
		{name: "Secret too large, nothing changed: stopped, no login (also after a restart: it is in the status)",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ResultSecretTooLarge, 1, -time.Hour)},
			action: ActStop, reason: tokensyncv1alpha1.ResultSecretTooLarge},
		{name: "Secret too large, new credentials: still stopped (they bring a token of the same size)",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ResultSecretTooLarge, 1, -time.Hour),
				func(o *Observation) { o.Credentials.Version, o.Credentials.Fingerprint = "9", fp2 }},
			action: ActStop, reason: tokensyncv1alpha1.ResultSecretTooLarge},
		{name: "Secret too large, spec edited (a smaller template): log in",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ResultSecretTooLarge, 1, time.Hour),
				func(o *Observation) { o.Generation++ }},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "Secret too large, a refresh forced: log in",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ResultSecretTooLarge, 1, time.Hour),
				func(o *Observation) { o.Force = "again" }},
			action: ActLogin, reason: triggerSecretMissing},

		// secretName changed.
		{name: "secretName changed: the valid token moves without a login",
			change: []func(*Observation){func(o *Observation) {
				held := o.Target.Held
				o.Previous = &held
				o.SecretName = "renamed"
				o.Target = TargetState{}
			}},
			action: ActWrite, reason: reasonSecretMoved},
		// At most one login per --min-login-interval, failed ones included.
		{name: "force-refresh 3s after the last login: waits for the interval's end",
			change: []func(*Observation){lastLoginAgo(3 * time.Second), func(o *Observation) { o.Force = "again" }},
			action: ActWait, reason: reasonMinLoginInterval, check: waitsUntil(t0.Add(7 * time.Second))},
		{name: "force-refresh as the interval ends: at once",
			change: []func(*Observation){lastLoginAgo(DefaultMinLoginInterval), func(o *Observation) { o.Force = "again" }},
			action: ActLogin, reason: triggerForceRefresh},
		{name: "credentials changed 1s after the last login: waits",
			change: []func(*Observation){lastLoginAgo(time.Second), func(o *Observation) { o.Credentials.Version, o.Credentials.Fingerprint = "8", fp2 }},
			action: ActWait, reason: reasonMinLoginInterval, check: waitsUntil(t0.Add(9 * time.Second))},
		{name: "refresh of a 5s token due inside the interval: waits",
			change: []func(*Observation){shortToken}, action: ActWait, reason: reasonMinLoginInterval, check: waitsUntil(t0.Add(6 * time.Second))},
		{name: "a 5s token expired inside the interval: still waits",
			change: []func(*Observation){shortToken, func(o *Observation) { o.Now = t0.Add(3 * time.Second) }},
			action: ActWait, reason: reasonMinLoginInterval, check: waitsUntil(t0.Add(6 * time.Second))},
		{name: "failure retry, backoff over inside the interval: waits",
			change: []func(*Observation){failedWith(tokensyncv1alpha1.ReasonProviderUnavailable, 1, -time.Second), lastLoginAgo(6 * time.Second)},
			action: ActWait, reason: reasonMinLoginInterval, check: waitsUntil(t0.Add(4 * time.Second))},
		{name: "failure retry, backoff longer than the interval: the backoff decides",
			change: []func(*Observation){failedWith(tokensyncv1alpha1.ReasonProviderUnavailable, 3, 20*time.Second), lastLoginAgo(time.Second)},
			action: ActWait, reason: reasonBackoff},
		{name: "rejected password, credentials fixed 2s later: waits",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 1, time.Minute), lastLoginAgo(2 * time.Second),
				func(o *Observation) { o.Credentials.Version, o.Credentials.Fingerprint = "9", fp2 }},
			action: ActWait, reason: reasonMinLoginInterval, check: waitsUntil(t0.Add(8 * time.Second))},
		{name: "credentials Secret created 2s after the TokenRequest found none: at once (nothing was sent)",
			change: []func(*Observation){noSecret, failedWith(tokensyncv1alpha1.ReasonCredentialsNotFound, 1, 3*time.Second), lastLoginAgo(2 * time.Second),
				func(o *Observation) { o.Status.LastAttempt.CredentialsVersion = "" }},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "first login: not delayed",
			change: []func(*Observation){noSecret, func(o *Observation) {
				o.MinLoginInterval = DefaultMinLoginInterval
				o.Status = tokensyncv1alpha1.TokenStatus{}
			}},
			action: ActLogin, reason: triggerSecretMissing},
		{name: "a token just obtained: written at once, not delayed",
			change: []func(*Observation){noSecret, lastLoginAgo(time.Second), func(o *Observation) {
				o.Pending = pendingFields{ObtainedAt: t0.Add(-time.Second), ExpiresAt: t0.Add(time.Hour), Provider: "partner", Endpoint: endpoint, CredentialsFingerprint: fp1,
					Reason: triggerSecretMissing, Message: "the target Secret tok does not exist"}.token()
			}},
			action: ActWrite, reason: triggerSecretMissing},
		{name: "a token obtained 2s ago, not written, credentials changed since: the next login waits",
			change: []func(*Observation){noSecret, lastLoginAgo(time.Hour), func(o *Observation) {
				o.Pending = pendingFields{ObtainedAt: t0.Add(-2 * time.Second), ExpiresAt: t0.Add(time.Hour), Provider: "partner", Endpoint: endpoint, CredentialsFingerprint: fp1}.token()
				o.Credentials.Version, o.Credentials.Fingerprint = "9", fp2
			}},
			action: ActWait, reason: reasonMinLoginInterval, check: waitsUntil(t0.Add(8 * time.Second))},
		{name: "a login under way inside the interval: waits for its end",
			change: []func(*Observation){lastLoginAgo(time.Second), func(o *Observation) { o.Force, o.LoginInFlight = "again", true }},
			action: ActWait, reason: ReasonLoginInFlight},
		{name: "no minimum interval: a force-refresh a second after a login goes at once",
			change: []func(*Observation){lastLoginAgo(time.Second), func(o *Observation) { o.Force, o.MinLoginInterval = "again", 0 }},
			action: ActLogin, reason: triggerForceRefresh},

		// A provider host down (hosthealth.go): its TokenRequests wait on it.
		{name: "host down: a provider's failure waits on the host, not on its own backoff",
			change: []func(*Observation){failedWith(tokensyncv1alpha1.ReasonProviderUnavailable, 3, 20*time.Second), hostDown},
			action: ActLogin, reason: triggerRetry, check: noProbeAsked},
		{name: "host down: a rejected password keeps its own backoff",
			change: []func(*Observation){failedWith(tokensyncv1alpha1.ReasonAuthenticationFailed, 1, time.Minute), hostDown},
			action: ActWait, reason: reasonBackoff},
		{name: "host up: a provider's failure keeps its own backoff",
			change: []func(*Observation){failedWith(tokensyncv1alpha1.ReasonProviderUnavailable, 3, 20*time.Second)},
			action: ActWait, reason: reasonBackoff},
		{name: "host down, the refresh due: log in (the gate holds the login on the host)",
			change: []func(*Observation){func(o *Observation) { o.Now = refreshTime }, hostDown},
			action: ActLogin, reason: triggerRefreshDue, check: noProbeAsked},
		{name: "waiting on the host: keep waiting, and say on what",
			change: []func(*Observation){func(o *Observation) { o.Now = refreshTime }, hostDown, waitsOnHost},
			action: ActWait, reason: ReasonWaitingOnHost, check: func(t *testing.T, d Decision) {
				if !d.At.IsZero() || !hasSubstrings(d.Message, "due for refresh", "provider host sandbox.partner.example is down", "next probe is at "+FormatTime(t0.Add(30*time.Second))) {
					t.Errorf("wait until %s, message %q: want the login's end, the host and its next probe named", d.At, d.Message)
				}
			}},
		{name: "waiting on the host, a probe under way",
			change: []func(*Observation){func(o *Observation) { o.Now = refreshTime }, hostDown, waitsOnHost, func(o *Observation) { o.Host.Probing = true }},
			action: ActWait, reason: ReasonWaitingOnHost, check: func(t *testing.T, d Decision) {
				if !strings.Contains(d.Message, "a probe is under way") {
					t.Errorf("message %q", d.Message)
				}
			}},
		{name: "host down: a force-refresh makes the login the next probe",
			change: []func(*Observation){hostDown, func(o *Observation) { o.Force = "now" }},
			action: ActLogin, reason: triggerForceRefresh, check: probeAsked},
		{name: "waiting on the host: a force-refresh asks again, as the next probe",
			change: []func(*Observation){hostDown, waitsOnHost, func(o *Observation) { o.Force = "now" }},
			action: ActLogin, reason: triggerForceRefresh, check: probeAsked},
		{name: "waiting on the host: a credentials change asks again, as the next probe",
			change: []func(*Observation){hostDown, waitsOnHost, func(o *Observation) { o.Credentials.Version, o.Credentials.Fingerprint = "8", fp2 }},
			action: ActLogin, reason: triggerCredentialsChanged, check: probeAsked},
		{name: "waiting as the next probe already: keep waiting",
			change: []func(*Observation){hostDown, waitsOnHost, func(o *Observation) { o.Force, o.NextProbeAsked = "now", true }},
			action: ActWait, reason: ReasonWaitingOnHost},
		{name: "waiting on the host, a force-refresh inside the interval: keep the place, ask again at its end",
			change: []func(*Observation){lastLoginAgo(3 * time.Second), hostDown, waitsOnHost, func(o *Observation) { o.Force = "now" }},
			action: ActWait, reason: ReasonWaitingOnHost, check: func(t *testing.T, d Decision) {
				if !d.At.Equal(t0.Add(7 * time.Second)) {
					t.Errorf("look again at %s, want the interval's end", d.At)
				}
			}},
		{name: "host down, a login under way (the probe): wait for its end",
			change: []func(*Observation){func(o *Observation) { o.Now = refreshTime; o.LoginInFlight = true }, hostDown},
			action: ActWait, reason: ReasonLoginInFlight},

		{name: "secretName changed while the old token is due: log in",
			change: []func(*Observation){func(o *Observation) {
				held := o.Target.Held
				o.Previous = &held
				o.SecretName = "renamed"
				o.Target = TargetState{}
				o.Now = refreshTime
			}},
			action: ActLogin, reason: triggerSecretMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := healthy()
			for _, c := range tt.change {
				c(&o)
			}
			d := Decide(o)
			if d.Action != tt.action || (tt.reason != "" && d.Reason != tt.reason) {
				t.Fatalf("decide = %s/%s (%s), want %s/%s", d.Action, d.Reason, d.Message, tt.action, tt.reason)
			}
			if d.Message == "" {
				t.Error("decision without a message")
			}
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}

// pendingFields builds a pending token for a decision row.
type pendingFields struct {
	ObtainedAt, ExpiresAt                                      time.Time
	Provider, Endpoint, SettingsDigest, CredentialsFingerprint string
	Reason, Message                                            string
	WriteFailures                                              int32
	RetryAt                                                    time.Time
}

func (f pendingFields) token() *PendingToken {
	return &PendingToken{
		Issued: Issued{Token: &providers.Token{Value: "pending", ObtainedAt: f.ObtainedAt, ExpiresAt: f.ExpiresAt}, Provider: f.Provider, Endpoint: f.Endpoint,
			SettingsDigest: f.SettingsDigest, CredentialsFingerprint: f.CredentialsFingerprint},
		Reason: f.Reason, Message: f.Message, Failures: f.WriteFailures, RetryAt: f.RetryAt,
	}
}
