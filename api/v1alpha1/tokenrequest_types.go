package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names of the providers this package was first written with. The type
// Provider, its enum and the rules that name providers are generated from
// providers/builtin (zz_generated.providers.go); a new provider needs no
// constant.
const (
	ProviderAML     Provider = "aml"
	ProviderAmpliFi Provider = "amplifi"
	ProviderPartner Provider = "partner"
)

// Annotations and labels tokensync reads or writes.
const (
	// AnnotationForceRefresh on a TokenRequest: any new value triggers one immediate login.
	AnnotationForceRefresh = "tokensync.io/force-refresh"
	// AnnotationExpiresAt on the target Secret: the token's expiry, RFC 3339 UTC.
	AnnotationExpiresAt = "tokensync.io/expires-at"
	// AnnotationObtainedAt on the target Secret: when the token was
	// obtained, RFC 3339 UTC.
	AnnotationObtainedAt = "tokensync.io/obtained-at"
	// MaxAuthenticationFailures consecutive AuthenticationFailed attempts
	// (status.lastAttempt.authenticationFailures) stop every login until a
	// change that could fix them, so that the provider does not lock the
	// account.
	MaxAuthenticationFailures = 3
	// AnnotationProvider on the target Secret: the provider that issued the token.
	AnnotationProvider = "tokensync.io/provider"
	// AnnotationEndpoint on the target Secret: the endpoint that issued the token.
	AnnotationEndpoint = "tokensync.io/endpoint"
	// AnnotationRestartedAt on a rollout restart target's pod template: when
	// tokensync last restarted it for a new token, RFC 3339.
	AnnotationRestartedAt = "tokensync.io/restartedAt"
	// AnnotationOwner on a target Secret of a TokenRequest with deletionPolicy
	// Retain, which carries no owner reference: the TokenRequest's name.
	AnnotationOwner = "tokensync.io/owner"
	// LabelCredentials marks a Secret that its writer allows TokenRequests
	// to use as credentials. Creating a TokenRequest needs no right to read
	// Secrets, so without it a TokenRequest could send any Secret of its
	// namespace to an endpoint of its author's choosing.
	LabelCredentials = "tokensync.io/credentials"
	// LabelManagedBy marks Secrets written by tokensync; the operator caches only these.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy on Secrets tokensync writes.
	ManagedByValue = "tokensync"
)

// Keys of the target Secret's data.
const (
	SecretKeyToken     = "token"
	SecretKeyExpiresAt = "expiresAt"
)

// LoginSpec is what a TokenRequest and a ClusterTokenRequest share: the
// provider to log in to, and the shape and life of the Secret the token is
// kept in.
type LoginSpec struct {
	// The admission rules that name providers (spec.endpoint required for
	// those without a default, each settings block required for its
	// provider and allowed for no other) are generated from the providers'
	// registrations, and come with providerRules.
	providerRules `json:",inline"`

	// +required
	Provider Provider `json:"provider"` // documented, provider by provider, by its generated type

	// Endpoint is where to log in: the provider's base URL unless
	// spec.provider says otherwise, an absolute http(s) URL without
	// user-info, query or fragment. Required for providers without a
	// default endpoint (spec.provider gives each one's).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://')",message="spec.endpoint must be an absolute URL starting with http:// or https://"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[a-zA-Z]+://[^/]*@')",message="spec.endpoint must not contain user-info (user:password@); put credentials in the credentials Secret"
	// +kubebuilder:validation:XValidation:rule="!self.contains('#') && !self.contains('?')",message="spec.endpoint must not contain a query (?) or fragment (#); give the provider's base URL only"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[\\\\s\\\\x00-\\\\x1f\\\\x7f]')",message="spec.endpoint must not contain whitespace or control characters"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^https?://') || (isURL(self) && size(url(self).getHostname()) > 0)",message="spec.endpoint must be a valid URL with a host name, e.g. https://api.example.com"
	Endpoint string `json:"endpoint,omitempty"`

	// RefreshBefore is how long before expiry the token is refreshed, at least
	// 10s, honoured up to half the token's lifetime; refreshes of tokens
	// issued together are spread up to half this window earlier. Unset, the
	// window is 5m or a third of the lifetime, whichever is shorter, spread
	// a quarter either side. Consumers that read a mounted Secret volume
	// need a window of over a minute (the kubelet's update delay): set
	// refreshBefore for tokens that live under about 3 minutes.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="spec.refreshBefore must be at least 10s"
	RefreshBefore *metav1.Duration `json:"refreshBefore,omitempty"`

	// SecretTemplate shapes the target Secret: its type, data keys rendered
	// from the token, labels and annotations.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// Suspend stops every login and every write to the target Secret and the
	// restart targets while true; force-refresh and a deleted Secret wait too.
	// Setting it back to false acts at once.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// DeletionPolicy says what happens to the target Secret (each of them,
	// for a ClusterTokenRequest) when the TokenRequest is deleted: Delete
	// (the default: the Secret is owned by the TokenRequest and goes with
	// it) or Retain (the Secret carries no owner reference and stays, so that
	// a GitOps prune or a re-create does not cut a running app off; a
	// TokenRequest of the same name adopts it). A ClusterTokenRequest applies
	// it also to the Secret of a namespace that stops being selected.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// OAuth2 configures provider oauth2; only allowed with it.
	// +optional
	OAuth2 *OAuth2Settings `json:"oauth2,omitempty"`

	// HTTP describes the login of provider http; only allowed with it.
	// +optional
	HTTP *HTTPSettings `json:"http,omitempty"`
}

// TokenRequestSpec says which provider to log in to, with which credentials,
// and where to keep the token.
type TokenRequestSpec struct {
	LoginSpec `json:",inline"`

	// CredentialsSecretRef names the Secret, in the TokenRequest's namespace,
	// that holds the login credentials; the keys each provider reads are
	// listed under spec.provider.
	// +required
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`

	// SecretName is the target Secret the token is written to, in the
	// TokenRequest's namespace. Defaults to the TokenRequest's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName,omitempty"`

	// RolloutRestartTargets are workloads in the TokenRequest's namespace
	// restarted each time a new token is written (the pod-template annotation
	// tokensync.io/restartedAt is set), for consumers that read the token once,
	// from an environment variable. At most one restart per target per
	// --rollout-restart-min-interval (default 10m); a restart held back by
	// that limit happens when the interval has passed.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	RolloutRestartTargets []RolloutRestartTarget `json:"rolloutRestartTargets,omitempty"`
}

// DeletionPolicy is what happens to the target Secret when its TokenRequest is deleted.
// +kubebuilder:validation:Enum=Delete;Retain
type DeletionPolicy string

const (
	DeletionPolicyDelete DeletionPolicy = "Delete"
	DeletionPolicyRetain DeletionPolicy = "Retain"
)

// DataTemplate is a Go text/template rendered into a Secret value, in
// tokensync's template sandbox (see SecretTemplate.Data). The operator
// checks a template fully when it renders it; these rules refuse the
// common mistakes at once.
// +kubebuilder:validation:MaxLength=4096
// +kubebuilder:validation:XValidation:rule="!self.matches('\\\\{\\\\{-?\\\\s*(else\\\\s+)?(range|with|define|template|block)\\\\b')",message="templates must not use range, with, define, template or block: a template has no loops and calls no other template; write each value out (.token, .expiresAt), and choose with if / else"
// +kubebuilder:validation:XValidation:rule="!self.matches('\\\\{\\\\{(-?|[^}]*[(|])\\\\s*(printf|call)\\\\b')",message="templates must not call printf or call: use print (a printf width can build gigabytes)"
type DataTemplate string

// RolloutRestartTarget names a workload restarted when a new token is written.
type RolloutRestartTarget struct {
	// Kind of the workload.
	// +required
	// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet
	Kind string `json:"kind"`
	// Name of the workload, in the TokenRequest's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// SecretReference names a Secret in the TokenRequest's namespace.
type SecretReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// LabelValue is a Kubernetes label value: at most 63 alphanumerics, '-', '_'
// or '.', beginning and ending with an alphanumeric.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`
type LabelValue string

// SecretTemplate shapes the target Secret.
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'kubernetes.io/basic-auth' || (has(self.data) && ('username' in self.data || 'password' in self.data))",message="a kubernetes.io/basic-auth Secret needs a username or password key: add one to spec.secretTemplate.data, e.g. password: \"{{ .token }}\""
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'kubernetes.io/dockerconfigjson' || (has(self.data) && '.dockerconfigjson' in self.data)",message="a kubernetes.io/dockerconfigjson Secret needs a .dockerconfigjson key: add it to spec.secretTemplate.data"
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'kubernetes.io/dockercfg' || (has(self.data) && '.dockercfg' in self.data)",message="a kubernetes.io/dockercfg Secret needs a .dockercfg key: add it to spec.secretTemplate.data"
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'kubernetes.io/ssh-auth' || (has(self.data) && 'ssh-privatekey' in self.data)",message="a kubernetes.io/ssh-auth Secret needs an ssh-privatekey key: add it to spec.secretTemplate.data"
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'kubernetes.io/tls' || (has(self.data) && 'tls.crt' in self.data && 'tls.key' in self.data)",message="a kubernetes.io/tls Secret needs tls.crt and tls.key keys: add them to spec.secretTemplate.data"
type SecretTemplate struct {
	// Type of the target Secret; default Opaque. Kubernetes does not let a
	// Secret's type change: when it changes here, tokensync deletes the
	// Secret and creates it again at once with the same token (no login).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self != 'kubernetes.io/service-account-token' && self != 'bootstrap.kubernetes.io/token'",message="spec.secretTemplate.type must not be a type Kubernetes fills in itself (service-account-token, bootstrap token)"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$`
	Type corev1.SecretType `json:"type,omitempty"`

	// Data maps further keys of the target Secret to Go text/template
	// templates rendered with the token's values: {{ .token }},
	// {{ .expiresAt }} (RFC 3339) and the provider's extra values
	// ({{ .userId }} for amplifi). They are written in addition to token and
	// expiresAt. Functions: and, or, not, eq, ne, lt, le, gt, ge, len, index,
	// slice, print, urlquery, b64enc, b64dec, trim, trimPrefix, trimSuffix,
	// replace, upper, lower, quote; if / else, no range, with, define or
	// template. A value renders to at most 64 KiB and the data of one Secret
	// to at most 1 MiB; past a limit nothing is written (Ready=False,
	// InvalidTemplate) and the token already stored stays.
	// Example: Authorization: "Bearer {{ .token }}".
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 253 && k.matches('^[-._a-zA-Z0-9]+$'))",message="spec.secretTemplate.data keys must be valid Secret keys: alphanumerics, '-', '_' or '.'"
	// +kubebuilder:validation:XValidation:rule="!('token' in self) && !('expiresAt' in self)",message="spec.secretTemplate.data must not set token or expiresAt: tokensync writes them; use another key, e.g. Authorization or API_TOKEN"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k].lastIndexOf('{{') < 0 || self[k].lastIndexOf('}}') > self[k].lastIndexOf('{{'))",message="spec.secretTemplate.data has a template whose last {{ action is not closed: close it with }}"
	Data map[string]DataTemplate `json:"data,omitempty"`

	// Labels added to the target Secret. app.kubernetes.io/managed-by is reserved.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="!('app.kubernetes.io/managed-by' in self)",message="spec.secretTemplate.labels must not set app.kubernetes.io/managed-by: tokensync sets it to find the Secrets it manages"
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",message="spec.secretTemplate.labels keys must be valid label keys: an optional DNS prefix and '/', then up to 63 alphanumerics, '-', '_' or '.'"
	Labels map[string]LabelValue `json:"labels,omitempty"`

	// Annotations added to the target Secret. The tokensync.io/ prefix is reserved.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('tokensync.io/'))",message="spec.secretTemplate.annotations must not use the tokensync.io/ prefix: tokensync writes those annotations itself"
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",message="spec.secretTemplate.annotations keys must be valid annotation keys: an optional DNS prefix and '/', then up to 63 alphanumerics, '-', '_' or '.'"
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Condition types and reasons.
const (
	// ConditionReady is True while the target Secret holds a valid token and
	// the last login attempt succeeded.
	ConditionReady = "Ready"
	// ConditionStalled is True (kstatus: Failed) when the TokenRequest needs a
	// person: wrong credentials, a Secret it may not write, an endpoint the
	// operator refuses. Absent otherwise.
	ConditionStalled = "Stalled"
	// ConditionReconciling is True (kstatus: InProgress) while a failed login
	// or Secret write is being retried. Absent otherwise.
	ConditionReconciling = "Reconciling"
	// ConditionCredentialsFound is False while the credentials Secret does not
	// exist, including while the token it obtained is still valid. Absent otherwise.
	ConditionCredentialsFound = "CredentialsFound"

	ReasonTokenIssued          = "TokenIssued"
	ReasonCredentialsNotFound  = "CredentialsNotFound"
	ReasonInvalidCredentials   = "InvalidCredentials"
	ReasonAuthenticationFailed = "AuthenticationFailed"
	ReasonProviderUnavailable  = "ProviderUnavailable"
	ReasonInvalidResponse      = "InvalidResponse"
	ReasonSecretConflict       = "SecretConflict"
	ReasonEndpointNotAllowed   = "EndpointNotAllowed"
	// ReasonRequestBlocked: the login was answered 401 or 403 without the
	// provider's documented shape (an HTML page, an empty body): something
	// in front of the provider (a web application firewall, a proxy)
	// refused the request, and the credentials were not judged. Retried
	// slowly, never Stalled, never a step toward the lockout.
	ReasonRequestBlocked = "RequestBlocked"
	// ReasonSecretWriteFailed: a login succeeded but the API server refused
	// to write the target Secret; the token is kept in memory and the write
	// retried, without a new login.
	ReasonSecretWriteFailed = "SecretWriteFailed"
	// ResultSecretTooLarge is LoginAttempt.Result when the token obtained
	// would make the target Secret larger than the API server accepts: the
	// token was dropped, Ready and Stalled say SecretWriteFailed, and
	// nothing is tried until the spec changes or a refresh is forced.
	ResultSecretTooLarge = "SecretTooLarge"
	// ReasonRetrying is the Reconciling condition's reason while a failure is retried.
	ReasonRetrying = "Retrying"
	// ReasonSucceeded is LoginAttempt.Result of a successful login.
	ReasonSucceeded = "Succeeded"
	// ReasonInvalidTemplate: a spec.secretTemplate.data template does not
	// parse or render (nothing was written), or the provider settings
	// (spec.http, spec.oauth2) cannot be used (nothing was sent).
	ReasonInvalidTemplate = "InvalidTemplate"
	// ReasonSuspended: spec.suspend is true; nothing is sent or written.
	ReasonSuspended = "Suspended"
	// ReasonCredentialsNotAllowed: the credentials Secret does not carry
	// the label LabelCredentials: "true"; nothing was read or sent.
	ReasonCredentialsNotAllowed = "CredentialsNotAllowed"
	// ReasonUnsupportedProvider: spec.provider names a provider this
	// operator does not have (only possible when the CRD is newer than the
	// operator); nothing was sent.
	ReasonUnsupportedProvider = "UnsupportedProvider"
	// ReasonInvalidNamespaceSelector: a ClusterTokenRequest's
	// spec.namespaceSelector cannot be evaluated (a label key or value that
	// is not one, admitted by a CRD without the rule that refuses it);
	// nothing was sent, written or deleted: every Secret stays as it was.
	ReasonInvalidNamespaceSelector = "InvalidNamespaceSelector"
)

// TokenStatus is what a TokenRequest and a ClusterTokenRequest record of
// their token: the operator's observations and its last login attempt.
type TokenStatus struct {
	// Conditions: Ready, with a reason naming the cause when False.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the spec generation last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// ExpiresAt is when the token in the target Secret expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// LastRefreshTime is when the token in the target Secret was obtained.
	// +optional
	LastRefreshTime *metav1.Time `json:"lastRefreshTime,omitempty"`

	// NextRefreshTime is when the next login is scheduled: the planned refresh
	// while healthy, the next retry after a failure.
	// +optional
	NextRefreshTime *metav1.Time `json:"nextRefreshTime,omitempty"`

	// FailedAttempts counts failed logins since the last success.
	// +optional
	FailedAttempts int32 `json:"failedAttempts,omitempty"`

	// SecretName is the target Secret currently holding the token.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// LastForceRefresh is the last value of the tokensync.io/force-refresh
	// annotation that was honoured.
	// +optional
	LastForceRefresh string `json:"lastForceRefresh,omitempty"`

	// LastAttempt is what the last login attempt was made with and how it
	// ended. After a failure only a change that could fix it (the credentials'
	// content, spec.provider, spec.endpoint or the provider settings, a new
	// force-refresh value) retries before the backoff ends.
	// +optional
	LastAttempt *LoginAttempt `json:"lastAttempt,omitempty"`
}

// TokenRequestStatus is what the operator observed and did.
type TokenRequestStatus struct {
	TokenStatus `json:",inline"`

	// RolloutRestarts is the state of each spec.rolloutRestartTargets entry.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	RolloutRestarts []RolloutRestartStatus `json:"rolloutRestarts,omitempty"`
}

// RolloutRestartStatus is what tokensync did with one restart target.
type RolloutRestartStatus struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// LastRestartTime is when the target was last restarted.
	// +optional
	LastRestartTime *metav1.Time `json:"lastRestartTime,omitempty"`
	// TokenFingerprint identifies the token the target runs with: the one
	// it was last restarted for, or the one current when it was listed
	// (keyed HMAC, tells nothing of the token).
	// +optional
	TokenFingerprint string `json:"tokenFingerprint,omitempty"`
	// NextRestartTime is a restart held back by the minimum interval between
	// two restarts of a target; it happens then.
	// +optional
	NextRestartTime *metav1.Time `json:"nextRestartTime,omitempty"`
	// Message says what happened last, e.g. that the target was not found.
	// +optional
	Message string `json:"message,omitempty"`
}

// LoginAttempt records one login attempt.
type LoginAttempt struct {
	// Time the attempt started.
	Time metav1.Time `json:"time"`
	// Provider the attempt logged in to.
	Provider string `json:"provider"`
	// Endpoint the attempt was sent to.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// CredentialsVersion is the resourceVersion of the credentials Secret the
	// attempt read; empty when it did not exist.
	// +optional
	CredentialsVersion string `json:"credentialsVersion,omitempty"`
	// CredentialsFingerprint identifies the content of the credentials the
	// provider uses: a keyed HMAC-SHA256 (the key is the operator's own), never
	// a plain hash, so it tells nothing about the values.
	// +optional
	CredentialsFingerprint string `json:"credentialsFingerprint,omitempty"`
	// SettingsDigest is the SHA-256 of the provider settings (spec.oauth2,
	// spec.http) the attempt was made with; empty for other providers.
	// +optional
	SettingsDigest string `json:"settingsDigest,omitempty"`
	// Result is Succeeded or the reason the attempt failed (SecretTooLarge:
	// a SecretWriteFailed for the Secret's size, which stops until the spec
	// changes or a refresh is forced).
	Result string `json:"result"`
	// AuthenticationFailures counts consecutive AuthenticationFailed results
	// up to and including this attempt; a RequestBlocked between them (the
	// credentials were not judged) neither counts nor ends the run, and
	// keeps the count.
	// +optional
	AuthenticationFailures int32 `json:"authenticationFailures,omitempty"`
}

// TokenRequest keeps a short-lived login token from a third-party API in a
// Secret, refreshing it before it expires.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tokreq;tokreqs,categories=tokensync
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Next Refresh",type=string,JSONPath=`.status.nextRefreshTime`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TokenRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec TokenRequestSpec `json:"spec"`
	// Status defaults to observedGeneration 0 until the operator first acts,
	// so that kstatus (Flux, cli-utils) and Argo CD see a new TokenRequest
	// as in progress, not as current because it has no conditions yet.
	// +kubebuilder:default={observedGeneration: 0}
	Status TokenRequestStatus `json:"status,omitempty"`
}

// TargetSecretName is the Secret the token is written to.
func (t *TokenRequest) TargetSecretName() string {
	if t.Spec.SecretName != "" {
		return t.Spec.SecretName
	}
	return t.Name
}

// +kubebuilder:object:root=true

// TokenRequestList is a list of TokenRequests.
type TokenRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TokenRequest `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TokenRequest{}, &TokenRequestList{})
}
