package controllers

import (
	"fmt"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The failure reasons and what each means for what comes next. This table
// is the only place these facts live: backoffFor reads the retry class,
// afterFailure the stall and lockout rules, decide the stop rule. A reason
// missing from it fails TestFailureRules.

// retryClass says how fast a failure is retried.
type retryClass int

const (
	// retryFast: the failure heals by itself (the provider is down or slow,
	// a write was refused): 5 s to 5 min, and while the stored token is
	// valid the last retry starts at least a second before it expires.
	retryFast retryClass = iota
	// retrySlow: it will not heal by itself (the provider rejected the
	// credentials or the request, the spec cannot be used): 1 min to 1 h,
	// so that an account is not locked nor a provider's log filled.
	retrySlow
)

// failureRule is what one failure reason means.
type failureRule struct {
	class retryClass
	// stalls: a person must act from the first failure (Stalled=True).
	stalls bool
	// stopsUntilChange: no retry can fix it; nothing is tried again until
	// an input that could fix it changes (fixingChange).
	stopsUntilChange bool
	// countsTowardLockout: maxAuthenticationTries consecutive failures of
	// this reason stop all logins until a fixing change, so that the
	// provider does not lock the account.
	countsTowardLockout bool
	// keepsLockoutCount: the credentials were not judged, so the count of
	// consecutive authentication failures stays as it was: neither a step
	// toward the lockout nor the end of a run of rejections (the provider,
	// which never saw the attempt, has not forgotten the ones before).
	keepsLockoutCount bool
	// sendsNothing: the attempt ends before any request is sent (no
	// credentials, a Secret or endpoint it may not use), so it is no login
	// for the minimum login interval: the credentials Secret applied just
	// after its TokenRequest logs in at once.
	sendsNothing bool
}

// failureRules holds every reason an attempt can fail with. Read only.
var failureRules = map[string]failureRule{
	tokensyncv1alpha1.ReasonProviderUnavailable: {class: retryFast},
	// An answer the provider's documents do not allow is as often a
	// truncated or garbled one during an outage as a wrong endpoint.
	tokensyncv1alpha1.ReasonInvalidResponse: {class: retryFast},
	// The Secret may be on its way (External Secrets, a sealed Secret).
	tokensyncv1alpha1.ReasonCredentialsNotFound: {class: retryFast, sendsNothing: true},
	// A quota or a policy refused the write; the token obtained is kept.
	tokensyncv1alpha1.ReasonSecretWriteFailed: {class: retryFast},
	// The token makes a Secret larger than the API server accepts: no
	// retry can write it, and holding it would pin memory until it expires.
	tokensyncv1alpha1.ResultSecretTooLarge:       {class: retrySlow, stalls: true, stopsUntilChange: true},
	tokensyncv1alpha1.ReasonAuthenticationFailed: {class: retrySlow, stalls: true, countsTowardLockout: true},
	// Something in front of the provider (a firewall, a proxy) refused the
	// request: slow, since it will not heal soon, but never Stalled, and
	// retried until it heals with no person acting.
	tokensyncv1alpha1.ReasonRequestBlocked:        {class: retrySlow, keepsLockoutCount: true},
	tokensyncv1alpha1.ReasonInvalidCredentials:    {class: retrySlow, stalls: true},
	tokensyncv1alpha1.ReasonCredentialsNotAllowed: {class: retrySlow, stalls: true, stopsUntilChange: true, sendsNothing: true},
	tokensyncv1alpha1.ReasonInvalidTemplate:       {class: retrySlow, stalls: true, stopsUntilChange: true},
	tokensyncv1alpha1.ReasonSecretConflict:        {class: retryFast, stalls: true, stopsUntilChange: true, sendsNothing: true},
	tokensyncv1alpha1.ReasonEndpointNotAllowed:    {class: retryFast, stalls: true, stopsUntilChange: true, sendsNothing: true},
	tokensyncv1alpha1.ReasonUnsupportedProvider:   {class: retrySlow, stalls: true, stopsUntilChange: true, sendsNothing: true},
	// A ClusterTokenRequest's selector that cannot be evaluated: only a
	// spec change fixes it, and until then nothing is written or deleted.
	tokensyncv1alpha1.ReasonInvalidNamespaceSelector: {class: retrySlow, stalls: true, stopsUntilChange: true, sendsNothing: true},
}

// ruleOf is the rule of a failure reason. A reason not in the table (a
// provider's error kind newer than it) is retried fast and stalls nothing.
func ruleOf(reason string) failureRule {
	return failureRules[reason]
}

// Messages said in more than one place.

// secretConflictMessage says that Secret secretName is not the kind's
// (TokenRequest, ClusterTokenRequest) to write.
func secretConflictMessage(kind, secretName string) string {
	return fmt.Sprintf("Secret %q already exists and is not controlled by this %s; "+
		"delete or rename it, or set spec.secretName to another name", secretName, kind)
}

// nothingWritten ends the message of a failure that wrote nothing.
const nothingWritten = "; nothing was written"

func templateFailure(problem string) failure {
	return failure{reason: tokensyncv1alpha1.ReasonInvalidTemplate, message: problem + nothingWritten}
}

// stillValid says until when the token in Secret name stays valid.
func stillValid(name, until string) string {
	return fmt.Sprintf("the token in Secret %s stays valid until %s", name, until)
}
