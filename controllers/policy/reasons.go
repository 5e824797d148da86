package policy

import (
	"fmt"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The failure reasons and what each means for what comes next. This table
// is the only place these facts live: backoffFor reads the retry class,
// afterFailure the stall and lockout rules, decide the stop rule. A reason
// missing from it fails TestFailureRules.

// RetryClass says how fast a failure is retried.
type RetryClass int

const (
	// RetryFast: the failure heals by itself (the provider is down or slow,
	// a write was refused): 5 s to 5 min, and while the stored token is
	// valid the last retry starts at least a second before it expires.
	RetryFast RetryClass = iota
	// RetrySlow: it will not heal by itself (the provider rejected the
	// credentials or the request, the spec cannot be used): 1 min to 1 h,
	// so that an account is not locked nor a provider's log filled.
	RetrySlow
)

// Rule is what one failure reason means.
type Rule struct {
	Class RetryClass
	// Stalls: a person must act from the first failure (Stalled=True).
	Stalls bool
	// StopsUntilChange: no retry can fix it; nothing is tried again until
	// an input that could fix it changes (fixingChange, LiftedBy).
	StopsUntilChange bool
	// LiftedBy says which change since the failed attempt could fix a
	// failure that stops (or, counting toward the lockout, locks out),
	// besides what lifts every stop (a provider, endpoint or settings
	// change, a new force-refresh value); nil: new credentials.
	LiftedBy func(o *Observation) bool
	// CountsTowardLockout: tokensyncv1alpha1.MaxAuthenticationFailures consecutive failures of
	// this reason stop all logins until a fixing change, so that the
	// provider does not lock the account.
	CountsTowardLockout bool
	// KeepsLockoutCount: the credentials were not judged, so the count of
	// consecutive authentication failures stays as it was: neither a step
	// toward the lockout nor the end of a run of rejections (the provider,
	// which never saw the attempt, has not forgotten the ones before).
	KeepsLockoutCount bool
	// SendsNothing: the attempt ends before any request is sent (no
	// credentials, a Secret or endpoint it may not use), so it is no login
	// for the minimum login interval: the credentials Secret applied just
	// after its TokenRequest logs in at once.
	SendsNothing bool
}

// Rules holds every reason an attempt can fail with. Read only.
var Rules = map[string]Rule{
	tokensyncv1alpha1.ReasonProviderUnavailable: {Class: RetryFast},
	// An answer the provider's documents do not allow is as often a
	// truncated or garbled one during an outage as a wrong endpoint.
	tokensyncv1alpha1.ReasonInvalidResponse: {Class: RetryFast},
	// The Secret may be on its way (External Secrets, a sealed Secret).
	tokensyncv1alpha1.ReasonCredentialsNotFound: {Class: RetryFast, SendsNothing: true},
	// A quota or a policy refused the write; the token obtained is kept.
	tokensyncv1alpha1.ReasonSecretWriteFailed: {Class: RetryFast},
	// The token makes a Secret larger than the API server accepts: no
	// retry can write it, and holding it would pin memory until it expires.
	// Only the spec (its template) decides the Secret's size; new
	// credentials would bring a token of the same provider.
	tokensyncv1alpha1.ResultSecretTooLarge:       {Class: RetrySlow, Stalls: true, StopsUntilChange: true, LiftedBy: specChanged},
	tokensyncv1alpha1.ReasonAuthenticationFailed: {Class: RetrySlow, Stalls: true, CountsTowardLockout: true},
	// Something in front of the provider (a firewall, a proxy) refused the
	// request: slow, since it will not heal soon, but never Stalled, and
	// retried until it heals with no person acting.
	tokensyncv1alpha1.ReasonRequestBlocked:     {Class: RetrySlow, KeepsLockoutCount: true},
	tokensyncv1alpha1.ReasonInvalidCredentials: {Class: RetrySlow, Stalls: true},
	// Lifted by the label on the credentials Secret.
	tokensyncv1alpha1.ReasonCredentialsNotAllowed: {Class: RetrySlow, Stalls: true, StopsUntilChange: true, SendsNothing: true, LiftedBy: credentialsOffered},
	// Any spec edit may fix a template; so may the credentials.
	tokensyncv1alpha1.ReasonInvalidTemplate: {Class: RetrySlow, Stalls: true, StopsUntilChange: true, LiftedBy: either(specChanged, newCredentials)},
	// Lifted by the foreign Secret going away.
	tokensyncv1alpha1.ReasonSecretConflict: {Class: RetryFast, Stalls: true, StopsUntilChange: true, SendsNothing: true, LiftedBy: foreignSecretGone},
	// Lifted by the operator's policy allowing the endpoint (a restart with
	// a wider allowlist).
	tokensyncv1alpha1.ReasonEndpointNotAllowed:  {Class: RetryFast, Stalls: true, StopsUntilChange: true, SendsNothing: true, LiftedBy: either(endpointAllowed, newCredentials)},
	tokensyncv1alpha1.ReasonUnsupportedProvider: {Class: RetrySlow, Stalls: true, StopsUntilChange: true, SendsNothing: true},
	// A ClusterTokenRequest's selector that cannot be evaluated: only a
	// spec change fixes it, and until then nothing is written or deleted.
	tokensyncv1alpha1.ReasonInvalidNamespaceSelector: {Class: RetrySlow, Stalls: true, StopsUntilChange: true, SendsNothing: true, LiftedBy: specChanged},
}

// The changes that lift a stop, as the rows name them.

func specChanged(o *Observation) bool { return o.Generation != o.Status.ObservedGeneration }

func credentialsOffered(o *Observation) bool { return o.Credentials.Found && o.Credentials.Allowed }

func foreignSecretGone(o *Observation) bool { return !o.Target.Foreign }

func endpointAllowed(o *Observation) bool { return !o.EndpointRefused }

// newCredentials: the credentials Secret appeared, or their content changed
// (a metadata-only change is not one).
func newCredentials(o *Observation) bool {
	last := o.Status.LastAttempt
	switch {
	case !o.Credentials.Found:
		return false
	case last.CredentialsVersion == "":
		return true
	}
	same, known := SameFingerprint(last.CredentialsFingerprint, o.Credentials.Fingerprint)
	return known && !same
}

func either(a, b func(*Observation) bool) func(*Observation) bool {
	return func(o *Observation) bool { return a(o) || b(o) }
}

// RuleOf is the rule of a failure reason. A reason not in the table (a
// provider's error kind newer than it) is retried fast and stalls nothing.
func RuleOf(reason string) Rule {
	return Rules[reason]
}

// Messages said in more than one place.

// SecretConflictMessage says that Secret secretName is not the kind's
// (TokenRequest, ClusterTokenRequest) to write.
func SecretConflictMessage(kind, secretName string) string {
	return fmt.Sprintf("Secret %q already exists and is not controlled by this %s; "+
		"delete or rename it, or set spec.secretName to another name", secretName, kind)
}

// nothingWritten ends the message of a failure that wrote nothing.
const nothingWritten = "; nothing was written"

func TemplateFailure(problem string) Failure {
	return Failure{Reason: tokensyncv1alpha1.ReasonInvalidTemplate, Message: problem + nothingWritten}
}

// StillValid says until when the token in Secret name stays valid.
func StillValid(name, until string) string {
	return fmt.Sprintf("the token in Secret %s stays valid until %s", name, until)
}
