package cli

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// The objects of the golden tests, as the operator leaves them (their
// messages are the operator's), seen at fixedNow: a Ready TokenRequest, one
// whose credentials were rejected, a suspended one whose token expired, and
// a ClusterTokenRequest that could not write one namespace's Secret. The
// README shows their output.

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is fixedNow moved by d, as an API time.
func at(d time.Duration) *metav1.Time {
	t := metav1.NewTime(fixedNow.Add(d))
	return &t
}

func microAt(d time.Duration) *metav1.MicroTime {
	t := metav1.NewMicroTime(fixedNow.Add(d))
	return &t
}

func rfc(d time.Duration) string { return fixedNow.Add(d).Format(time.RFC3339) }

const fixtureEndpoint = "https://partner.example.com"

func readyTokenRequest() *tokensyncv1alpha1.TokenRequest {
	return &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "partner-token", Namespace: "team-a", UID: "uid-partner"},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: tokensyncv1alpha1.ProviderPartner, Endpoint: fixtureEndpoint},
			CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "partner-credentials"},
		},
		Status: tokensyncv1alpha1.TokenRequestStatus{TokenStatus: tokensyncv1alpha1.TokenStatus{
			Conditions: []metav1.Condition{{
				Type: tokensyncv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: tokensyncv1alpha1.ReasonTokenIssued,
				LastTransitionTime: *at(-26 * time.Hour),
				Message:            "Secret partner-token holds a valid token until " + rfc(2*time.Hour+41*time.Minute) + "; next refresh at " + rfc(2*time.Hour+36*time.Minute),
			}},
			ExpiresAt:       at(2*time.Hour + 41*time.Minute),
			LastRefreshTime: at(-19 * time.Minute),
			NextRefreshTime: at(2*time.Hour + 36*time.Minute),
			SecretName:      "partner-token",
			LastAttempt: &tokensyncv1alpha1.LoginAttempt{
				Time: *at(-19 * time.Minute), Provider: "partner", Endpoint: fixtureEndpoint, Result: tokensyncv1alpha1.ReasonSucceeded,
			},
		}},
	}
}

func rejectedTokenRequest() *tokensyncv1alpha1.TokenRequest {
	msg := "AML Watcher rejected the credentials (HTTP 401): check email and password in the credentials Secret; " +
		"the token in Secret aml-token stays valid until " + rfc(41*time.Minute) + " (attempt 2, next retry at " + rfc(3*time.Minute) + ")"
	return &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "aml-token", Namespace: "team-a", UID: "uid-aml"},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: tokensyncv1alpha1.ProviderAML},
			CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "aml-credentials"},
		},
		Status: tokensyncv1alpha1.TokenRequestStatus{TokenStatus: tokensyncv1alpha1.TokenStatus{
			Conditions: []metav1.Condition{
				{Type: tokensyncv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: tokensyncv1alpha1.ReasonAuthenticationFailed, LastTransitionTime: *at(-3 * time.Minute), Message: msg},
				{Type: tokensyncv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: tokensyncv1alpha1.ReasonAuthenticationFailed, LastTransitionTime: *at(-3 * time.Minute), Message: msg},
			},
			ExpiresAt:       at(41 * time.Minute),
			LastRefreshTime: at(-79 * time.Minute),
			NextRefreshTime: at(3 * time.Minute),
			FailedAttempts:  2,
			SecretName:      "aml-token",
			LastAttempt: &tokensyncv1alpha1.LoginAttempt{
				Time: *at(-time.Minute), Provider: "aml", Endpoint: "https://api.amlwatcher.com",
				Result: tokensyncv1alpha1.ReasonAuthenticationFailed, AuthenticationFailures: 2,
			},
		}},
	}
}

func suspendedTokenRequest() *tokensyncv1alpha1.TokenRequest {
	return &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "billing-token", Namespace: "team-a", UID: "uid-billing"},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: tokensyncv1alpha1.ProviderPartner, Endpoint: fixtureEndpoint, Suspend: true},
			CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "partner-credentials"},
		},
		Status: tokensyncv1alpha1.TokenRequestStatus{TokenStatus: tokensyncv1alpha1.TokenStatus{
			Conditions: []metav1.Condition{{
				Type: tokensyncv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: tokensyncv1alpha1.ReasonSuspended, LastTransitionTime: *at(-3 * time.Minute),
				Message: "spec.suspend is true: no login and no write until it is false; Secret billing-token holds no valid token",
			}},
			ExpiresAt:       at(-3 * time.Minute),
			LastRefreshTime: at(-63 * time.Minute),
			SecretName:      "billing-token",
			LastAttempt: &tokensyncv1alpha1.LoginAttempt{
				Time: *at(-63 * time.Minute), Provider: "partner", Endpoint: fixtureEndpoint, Result: tokensyncv1alpha1.ReasonSucceeded,
			},
		}},
	}
}

func failedNamespaceClusterTokenRequest() *tokensyncv1alpha1.ClusterTokenRequest {
	conflict := `Secret "shared-token" already exists and is not controlled by this ClusterTokenRequest; delete or rename it, or set spec.secretName to another name`
	msg := "the token is valid until " + rfc(47*time.Minute) + " in 2 of 3 namespaces; not in 1: team-c (SecretConflict: " + conflict + ")"
	return &tokensyncv1alpha1.ClusterTokenRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "shared-token", UID: "uid-shared"},
		Spec: tokensyncv1alpha1.ClusterTokenRequestSpec{
			LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: tokensyncv1alpha1.ProviderPartner, Endpoint: fixtureEndpoint},
			CredentialsSecretRef: tokensyncv1alpha1.NamespacedSecretReference{Namespace: "tokensync-system", Name: "partner-credentials"},
			SecretName:           "shared-token",
			Namespaces:           []string{"team-a", "team-b", "team-c"},
		},
		Status: tokensyncv1alpha1.ClusterTokenRequestStatus{
			TokenStatus: tokensyncv1alpha1.TokenStatus{
				Conditions: []metav1.Condition{
					{Type: tokensyncv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: tokensyncv1alpha1.ReasonSecretConflict, LastTransitionTime: *at(-13 * time.Minute), Message: msg},
					{Type: tokensyncv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: tokensyncv1alpha1.ReasonSecretConflict, LastTransitionTime: *at(-13 * time.Minute), Message: msg},
				},
				ExpiresAt:       at(47 * time.Minute),
				LastRefreshTime: at(-13 * time.Minute),
				NextRefreshTime: at(42 * time.Minute),
				SecretName:      "shared-token",
				LastAttempt: &tokensyncv1alpha1.LoginAttempt{
					Time: *at(-13 * time.Minute), Provider: "partner", Endpoint: fixtureEndpoint, Result: tokensyncv1alpha1.ReasonSucceeded,
				},
			},
			Namespaces:       tokensyncv1alpha1.NamespaceCounts{Selected: 3, Written: 2, Failed: 1},
			FailedNamespaces: []tokensyncv1alpha1.NamespaceFailure{{Name: "team-c", Reason: tokensyncv1alpha1.ReasonSecretConflict, Message: conflict}},
		},
	}
}

// targetSecret is the Secret the operator writes for readyTokenRequest,
// holding token.
func targetSecret(token string) *corev1.Secret {
	tr := readyTokenRequest()
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: "partner-token", Namespace: "team-a",
			Labels: map[string]string{tokensyncv1alpha1.LabelManagedBy: tokensyncv1alpha1.ManagedByValue},
			Annotations: map[string]string{
				tokensyncv1alpha1.AnnotationProvider:   "partner",
				tokensyncv1alpha1.AnnotationEndpoint:   fixtureEndpoint,
				tokensyncv1alpha1.AnnotationExpiresAt:  rfc(2*time.Hour + 41*time.Minute),
				tokensyncv1alpha1.AnnotationObtainedAt: rfc(-19 * time.Minute),
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: tokensyncv1alpha1.GroupVersion.String(), Kind: "TokenRequest", Name: tr.Name, UID: tr.UID, Controller: ptrTo(true),
			}},
		},
		Data: map[string][]byte{
			tokensyncv1alpha1.SecretKeyToken:     []byte(token),
			tokensyncv1alpha1.SecretKeyExpiresAt: []byte(rfc(2*time.Hour + 41*time.Minute)),
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

// eventAt is an event about an object, as the operator records it
// (events.k8s.io: eventTime, no lastTimestamp).
func eventAt(d time.Duration, typ, reason, message string) corev1.Event {
	return corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: reason + rfc(d)},
		EventTime:  metav1.NewMicroTime(fixedNow.Add(d)), Type: typ, Reason: reason, Message: message,
	}
}
