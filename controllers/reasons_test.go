package controllers

import (
	"testing"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// TestFailureRules: the reason table, one row per failure reason, as the
// README's "Conditions and what to do" describes them; every provider error
// kind is a reason of the table.
func TestFailureRules(t *testing.T) {
	const fast, slow = retryFast, retrySlow
	tests := []struct {
		reason                  string
		class                   retryClass
		stalls, stops, lockouts bool
	}{
		{tokensyncv1alpha1.ReasonProviderUnavailable, fast, false, false, false},
		{tokensyncv1alpha1.ReasonInvalidResponse, fast, false, false, false},
		{tokensyncv1alpha1.ReasonCredentialsNotFound, fast, false, false, false},
		{tokensyncv1alpha1.ReasonSecretWriteFailed, fast, false, false, false},
		{tokensyncv1alpha1.ReasonAuthenticationFailed, slow, true, false, true},
		{tokensyncv1alpha1.ReasonInvalidCredentials, slow, true, false, false},
		{tokensyncv1alpha1.ReasonCredentialsNotAllowed, slow, true, true, false},
		{tokensyncv1alpha1.ReasonInvalidTemplate, slow, true, true, false},
		{tokensyncv1alpha1.ReasonSecretConflict, fast, true, true, false},
		{tokensyncv1alpha1.ReasonEndpointNotAllowed, fast, true, true, false},
		{tokensyncv1alpha1.ReasonUnsupportedProvider, slow, true, true, false},
	}
	if len(tests) != len(failureRules) {
		t.Errorf("%d rows here, %d reasons in the table: a reason was added without a row", len(tests), len(failureRules))
	}
	for _, tt := range tests {
		r, ok := failureRules[tt.reason]
		if !ok {
			t.Errorf("%s is not in the table", tt.reason)
			continue
		}
		if r.class != tt.class || r.stalls != tt.stalls || r.stopsUntilChange != tt.stops || r.countsTowardLockout != tt.lockouts {
			t.Errorf("%s: %+v, want class %v, stalls %v, stops %v, lockout %v", tt.reason, r, tt.class, tt.stalls, tt.stops, tt.lockouts)
		}
	}
	for _, kind := range []providers.ErrorKind{providers.InvalidCredentials, providers.AuthenticationFailed, providers.ProviderUnavailable,
		providers.InvalidResponse, providers.EndpointNotAllowed, providers.InvalidTemplate} {
		if _, ok := failureRules[string(kind)]; !ok {
			t.Errorf("provider error kind %s has no rule", kind)
		}
	}
	// A reason the table does not know is retried fast and stalls nothing.
	if r := ruleOf("SomethingNew"); r != (failureRule{}) {
		t.Errorf("unknown reason: %+v", r)
	}
}
