package cli

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// status builds a TokenStatus from the parts a case needs.
type status struct {
	ready, readyReason, readyMessage string
	stalledReason                    string
	force                            string
	result                           string
	attemptAgo                       time.Duration
	authFailures                     int32
	refreshed                        time.Duration // lastRefreshTime, from fixedNow
}

func (s status) build() *tokensyncv1alpha1.TokenStatus {
	st := &tokensyncv1alpha1.TokenStatus{LastForceRefresh: s.force}
	if s.ready != "" {
		st.Conditions = append(st.Conditions, metav1.Condition{Type: tokensyncv1alpha1.ConditionReady,
			Status: metav1.ConditionStatus(s.ready), Reason: s.readyReason, Message: s.readyMessage})
	}
	if s.stalledReason != "" {
		st.Conditions = append(st.Conditions, metav1.Condition{Type: tokensyncv1alpha1.ConditionStalled,
			Status: metav1.ConditionTrue, Reason: s.stalledReason})
	}
	if s.result != "" {
		st.LastAttempt = &tokensyncv1alpha1.LoginAttempt{Time: *at(-s.attemptAgo), Result: s.result, AuthenticationFailures: s.authFailures}
	}
	if s.refreshed != 0 {
		st.LastRefreshTime = at(s.refreshed)
	}
	return st
}

func TestStoppedAfterRejection(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   status
		want string
	}{
		{"healthy", status{ready: "True", readyReason: "TokenIssued", result: "Succeeded"}, ""},
		{"stalled on rejected credentials", status{ready: "False", readyReason: "AuthenticationFailed", stalledReason: "AuthenticationFailed", result: "AuthenticationFailed", authFailures: 1},
			"stopped after the provider rejected its credentials (Stalled, AuthenticationFailed)"},
		{"three rejections, then a blocked request", status{ready: "False", readyReason: "RequestBlocked", result: "RequestBlocked", authFailures: 3},
			"stopped after the provider rejected its credentials 3 times in a row"},
		{"two rejections, then a blocked request", status{ready: "False", readyReason: "RequestBlocked", result: "RequestBlocked", authFailures: 2}, ""},
		{"stalled for another reason", status{ready: "False", readyReason: "SecretConflict", stalledReason: "SecretConflict", result: "Succeeded"}, ""},
		{"provider down", status{ready: "False", readyReason: "ProviderUnavailable", result: "ProviderUnavailable"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stoppedAfterRejection(tc.st.build()); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRenewed(t *testing.T) {
	const value = "2026-03-01T12:00:00.5Z"
	before := status{ready: "True", readyReason: "TokenIssued", result: "Succeeded", force: "old", refreshed: -time.Hour}.build()
	req := renewRequest{value: value, before: *before}
	for _, tc := range []struct {
		name string
		st   status
		want bool
	}{
		{"new token for the request", status{ready: "True", readyReason: "TokenIssued", result: "Succeeded", force: value, refreshed: -time.Second}, true},
		{"not acted on yet", status{ready: "True", readyReason: "TokenIssued", result: "Succeeded", force: "old", refreshed: -time.Hour}, false},
		{"an earlier refresh, not for the request", status{ready: "True", readyReason: "TokenIssued", result: "Succeeded", force: "old", refreshed: -time.Second}, false},
		{"honoured, the login failed", status{ready: "False", readyReason: "ProviderUnavailable", result: "ProviderUnavailable", force: value, refreshed: -time.Hour}, false},
		{"honoured, the same token", status{ready: "True", readyReason: "TokenIssued", result: "Succeeded", force: value, refreshed: -time.Hour}, false},
		{"honoured, not written", status{ready: "False", readyReason: "SecretWriteFailed", result: "SecretWriteFailed", force: value, refreshed: -time.Hour}, false},
		{"a ClusterTokenRequest's new token, not written in every namespace", status{ready: "False", readyReason: "SecretConflict", stalledReason: "SecretConflict", result: "Succeeded", force: value, refreshed: -time.Second}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := renewed(tc.st.build(), req); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNotRenewed(t *testing.T) {
	const value = "2026-03-01T12:00:00.5Z"
	req := renewRequest{value: value}
	for _, tc := range []struct {
		name      string
		suspended bool
		st        status
		says      string
		final     bool
	}{
		{"suspended", true, status{ready: "False", readyReason: "Suspended", result: "Succeeded", attemptAgo: time.Hour},
			"it is suspended (spec.suspend is true): nothing is sent until it is false", true},
		{"tried, and stopped after rejected credentials", false,
			status{ready: "False", readyReason: "AuthenticationFailed", readyMessage: "the partner API rejected the credentials", stalledReason: "AuthenticationFailed", result: "AuthenticationFailed", attemptAgo: time.Second, authFailures: 1, force: value},
			"stopped after the provider rejected its credentials (Stalled, AuthenticationFailed): the partner API rejected the credentials", true},
		{"the provider is down", false,
			status{ready: "False", readyReason: "ProviderUnavailable", readyMessage: "could not reach the partner API at partner.example.com: the connection failed", result: "ProviderUnavailable", attemptAgo: time.Second, force: value},
			"waiting for the provider: could not reach the partner API at partner.example.com: the connection failed", false},
		{"the minimum login interval", false, status{ready: "True", readyReason: "TokenIssued", result: "Succeeded", attemptAgo: 4 * time.Second},
			"waiting for the minimum login interval (10s by default) since the last login at 2026-03-01T11:59:56Z", false},
		{"just past the minimum login interval", false, status{ready: "True", readyReason: "TokenIssued", result: "Succeeded", attemptAgo: 10 * time.Second},
			"the operator has not acted on the request yet (is it running? kubectl tokensync check)", false},
		{"honoured, failed", false,
			status{ready: "False", readyReason: "InvalidResponse", readyMessage: "the answer was not JSON", result: "InvalidResponse", attemptAgo: time.Minute, force: value},
			"the login failed (InvalidResponse): the answer was not JSON", false},
		{"honoured, logged in, not written", false,
			status{ready: "False", readyReason: "SecretWriteFailed", readyMessage: "the API server refused to write Secret partner-token", result: "Succeeded", attemptAgo: time.Minute, force: value},
			"the operator has not written the new token yet: the API server refused to write Secret partner-token", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			says, final := notRenewed(tc.suspended, tc.st.build(), req, fixedNow)
			if says != tc.says || final != tc.final {
				t.Errorf("got %q (final %v), want %q (final %v)", says, final, tc.says, tc.final)
			}
		})
	}
}

// TestNotRenewedQuotesSafely: a condition message goes through printable.
func TestNotRenewedQuotesSafely(t *testing.T) {
	st := status{ready: "False", readyReason: "ProviderUnavailable", readyMessage: "down\x1b[2J", result: "ProviderUnavailable", attemptAgo: time.Minute}.build()
	if says, _ := notRenewed(false, st, renewRequest{value: "v"}, fixedNow); strings.Contains(says, "\x1b") {
		t.Errorf("an escape sequence reached the output: %q", says)
	}
}
