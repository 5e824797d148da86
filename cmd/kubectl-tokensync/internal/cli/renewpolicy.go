package cli

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// What renew reads of a TokenRequest's or ClusterTokenRequest's status,
// each a pure function of the object and the time, as the operator's
// decision is: the plugin only explains what the operator does.

// defaultMinLoginInterval is the operator's --min-login-interval default
// (controllers.DefaultMinLoginInterval). The interval an operator runs with
// is recorded nowhere but in its decision, so renew can only say the default.
const defaultMinLoginInterval = 10 * time.Second

// stoppedAfterRejection says why the operator stopped logging in for this
// object after the provider rejected its credentials, "" when it did not.
// A force-refresh would send the rejected credentials once more, a step
// closer to the provider locking the account: renew --all and -l skip
// these unless --force.
func stoppedAfterRejection(st *tokensyncv1alpha1.TokenStatus) string {
	if c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionStalled); c != nil &&
		c.Status == metav1.ConditionTrue && c.Reason == tokensyncv1alpha1.ReasonAuthenticationFailed {
		return "stopped after the provider rejected its credentials (Stalled, AuthenticationFailed)"
	}
	if a := st.LastAttempt; a != nil && a.AuthenticationFailures >= tokensyncv1alpha1.MaxAuthenticationFailures {
		return fmt.Sprintf("stopped after the provider rejected its credentials %d times in a row", a.AuthenticationFailures)
	}
	return ""
}

// renewRequest is one force-refresh renew asked for.
type renewRequest struct {
	// value is the force-refresh annotation's new value.
	value string
	// before is the status when it was asked.
	before tokensyncv1alpha1.TokenStatus
}

// renewed reports whether the object holds a new token obtained for the
// request: the operator honoured the value (status.lastForceRefresh), its
// last login succeeded, and the token it records is another than before
// (a token obtained but not written leaves those times as they were). A
// ClusterTokenRequest's token may be new and still not written in every
// namespace: failedNamespaces says so.
func renewed(st *tokensyncv1alpha1.TokenStatus, req renewRequest) bool {
	if st.LastForceRefresh != req.value || st.LastAttempt == nil || st.LastAttempt.Result != tokensyncv1alpha1.ReasonSucceeded {
		return false
	}
	return !sameTime(st.LastRefreshTime, req.before.LastRefreshTime) || !sameTime(st.ExpiresAt, req.before.ExpiresAt)
}

func sameTime(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(b)
}

// notRenewed says why an object has no new token yet, and whether waiting
// longer can help (final: it will not renew until someone acts).
func notRenewed(suspended bool, st *tokensyncv1alpha1.TokenStatus, req renewRequest, now time.Time) (why string, final bool) {
	honoured := st.LastForceRefresh == req.value
	ready := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady)
	switch {
	case suspended:
		return "it is suspended (spec.suspend is true): nothing is sent until it is false", true
	case honoured && stoppedAfterRejection(st) != "":
		return stoppedAfterRejection(st) + conditionSays(ready), true
	case ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == tokensyncv1alpha1.ReasonProviderUnavailable:
		return "waiting for the provider: " + printable(ready.Message), false
	}
	if a := st.LastAttempt; a != nil && now.Before(a.Time.Add(defaultMinLoginInterval)) {
		return fmt.Sprintf("waiting for the minimum login interval (%s by default) since the last login at %s",
			defaultMinLoginInterval, a.Time.UTC().Format(time.RFC3339)), false
	}
	if !honoured {
		return "the operator has not acted on the request yet (is it running? kubectl tokensync check)", false
	}
	if a := st.LastAttempt; a != nil && a.Result != tokensyncv1alpha1.ReasonSucceeded {
		return "the login failed (" + printable(a.Result) + ")" + conditionSays(ready), false
	}
	return "the operator has not written the new token yet" + conditionSays(ready), false
}

// conditionSays quotes the Ready condition's message, if any.
func conditionSays(c *metav1.Condition) string {
	if c == nil || c.Message == "" {
		return ""
	}
	return ": " + printable(c.Message)
}
