package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnotationClusterOwner on a target Secret of a ClusterTokenRequest with
// deletionPolicy Retain, which carries no owner reference: the
// ClusterTokenRequest's name.
const AnnotationClusterOwner = "tokensync.io/cluster-owner"

// ClusterTokenRequestSpec is a TokenRequestSpec for many namespaces: one
// login, its token written to the Secret spec.secretName in every namespace
// selected.
// +kubebuilder:validation:XValidation:rule="has(self.namespaceSelector) || (has(self.namespaces) && size(self.namespaces) > 0)",message="a ClusterTokenRequest needs spec.namespaceSelector or spec.namespaces (or both): the namespaces that get the target Secret"
// +kubebuilder:validation:XValidation:rule="!has(self.rolloutRestartTargets)",message="spec.rolloutRestartTargets is not supported by ClusterTokenRequest in this version: use a TokenRequest in the namespace of the workloads to restart"
type ClusterTokenRequestSpec struct {
	LoginSpec `json:",inline"`

	// CredentialsSecretRef names the Secret, and its namespace, that holds
	// the login credentials; the keys each provider reads are listed under
	// spec.provider. The Secret must be labelled tokensync.io/credentials:
	// "true", like any credentials Secret.
	// +required
	CredentialsSecretRef NamespacedSecretReference `json:"credentialsSecretRef"`

	// SecretName is the target Secret the token is written to, in every
	// namespace selected.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName"`

	// NamespaceSelector selects, by their labels, namespaces that get the
	// target Secret. A namespace that starts to match gets it at once, from
	// the token held (no login); one that stops matching has it deleted (or
	// left, with deletionPolicy Retain). A selector the operator cannot
	// evaluate (a label key or value that is not one) writes and deletes
	// nothing: Ready is False, reason InvalidNamespaceSelector.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="every matchExpressions operator must be one of In, NotIn, Exists, DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : !has(e.values) || size(e.values) == 0)",message="matchExpressions values must be set (not empty) with operators In and NotIn, and must be empty with Exists and DoesNotExist"
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Namespaces names namespaces that get the target Secret, in addition to
	// those namespaceSelector selects.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespaces []string `json:"namespaces,omitempty"`

	// RolloutRestartTargets is not supported by ClusterTokenRequest: it is
	// here only so that admission can refuse it with a message that says so.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	RolloutRestartTargets []RolloutRestartTarget `json:"rolloutRestartTargets,omitempty"`
}

// NamespacedSecretReference names a Secret and its namespace.
type NamespacedSecretReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
	// Namespace of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`
}

// MaxFailedNamespaces bounds status.failedNamespaces.
const MaxFailedNamespaces = 20

// ClusterTokenRequestStatus is what the operator observed and did, for
// the token and for each namespace selected.
type ClusterTokenRequestStatus struct {
	TokenStatus `json:",inline"`

	// Namespaces counts the namespaces selected, those whose Secret holds
	// the current token, and those where it could not be written.
	// +optional
	Namespaces NamespaceCounts `json:"namespaces,omitempty"`

	// FailedNamespaces names the namespaces whose Secret could not be
	// written (at most 20), and why.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=20
	FailedNamespaces []NamespaceFailure `json:"failedNamespaces,omitempty"`
}

// NamespaceCounts counts the namespaces of a ClusterTokenRequest.
type NamespaceCounts struct {
	// Selected namespaces: matched by spec.namespaceSelector or named in
	// spec.namespaces, existing and not being deleted.
	Selected int32 `json:"selected"`
	// Written namespaces: their Secret holds the current token.
	Written int32 `json:"written"`
	// Failed namespaces: their Secret could not be written.
	Failed int32 `json:"failed"`
}

// NamespaceFailure says why one namespace's Secret was not written.
type NamespaceFailure struct {
	// Name of the namespace.
	Name string `json:"name"`
	// Reason, e.g. SecretConflict or SecretWriteFailed.
	Reason string `json:"reason"`
	// Message says what to fix.
	// +optional
	Message string `json:"message,omitempty"`
}

// ClusterTokenRequest keeps one short-lived login token from a third-party
// API in a Secret of every namespace it selects: one login per lifetime
// for all of them. For cluster administrators.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ctokreq;ctokreqs,categories=tokensync
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.secretName`
// +kubebuilder:printcolumn:name="Written",type=integer,JSONPath=`.status.namespaces.written`
// +kubebuilder:printcolumn:name="Selected",type=integer,JSONPath=`.status.namespaces.selected`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterTokenRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ClusterTokenRequestSpec `json:"spec"`
	// Status defaults to observedGeneration 0 until the operator first acts,
	// so that kstatus and Argo CD see a new ClusterTokenRequest as in
	// progress, not as current because it has no conditions yet.
	// +kubebuilder:default={observedGeneration: 0}
	Status ClusterTokenRequestStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ClusterTokenRequestList is a list of ClusterTokenRequests.
type ClusterTokenRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterTokenRequest `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ClusterTokenRequest{}, &ClusterTokenRequestList{})
}
