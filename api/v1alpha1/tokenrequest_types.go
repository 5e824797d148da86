package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Provider names a supported login provider.
// +kubebuilder:validation:Enum=aml;amplifi;partner;oauth2;http
type Provider string

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
	// AnnotationProvider on the target Secret: the provider that issued the token.
	AnnotationProvider = "tokensync.io/provider"
	// AnnotationEndpoint on the target Secret: the endpoint that issued the token.
	AnnotationEndpoint = "tokensync.io/endpoint"
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

// TokenRequestSpec says which provider to log in to, with which credentials,
// and where to keep the token.
// +kubebuilder:validation:XValidation:rule="self.provider == 'aml' || (has(self.endpoint) && size(self.endpoint) > 0)",message="spec.endpoint is required for providers amplifi, partner, oauth2 and http (they have no public default); set it to the provider's base URL (for oauth2 the token URL), e.g. https://api.example.com"
// +kubebuilder:validation:XValidation:rule="self.provider != 'oauth2' || has(self.oauth2)",message="spec.oauth2 is required for provider oauth2 (oauth2: {} takes the defaults: HTTP Basic client authentication, no scope)"
// +kubebuilder:validation:XValidation:rule="self.provider == 'oauth2' || !has(self.oauth2)",message="spec.oauth2 is only allowed with provider oauth2"
// +kubebuilder:validation:XValidation:rule="self.provider != 'http' || has(self.http)",message="spec.http is required for provider http: it says how to log in (path, body, token, expiry)"
// +kubebuilder:validation:XValidation:rule="self.provider == 'http' || !has(self.http)",message="spec.http is only allowed with provider http"
type TokenRequestSpec struct {
	// Provider is the login provider: aml (AML Watcher), amplifi (AmpliFi),
	// partner, oauth2 (OAuth 2.0 client credentials, configured by
	// spec.oauth2) or http (a login described by spec.http).
	// +required
	Provider Provider `json:"provider"`

	// Endpoint is the provider's base URL (for oauth2 the token URL), an
	// absolute http(s) URL without user-info, query or fragment. Defaults to
	// https://api.amlwatcher.com for aml; required for the others.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://')",message="spec.endpoint must be an absolute URL starting with http:// or https://"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[a-zA-Z]+://[^/]*@')",message="spec.endpoint must not contain user-info (user:password@); put credentials in the credentials Secret"
	// +kubebuilder:validation:XValidation:rule="!self.contains('#') && !self.contains('?')",message="spec.endpoint must not contain a query (?) or fragment (#); give the provider's base URL only"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[\\\\s\\\\x00-\\\\x1f\\\\x7f]')",message="spec.endpoint must not contain whitespace or control characters"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^https?://') || (isURL(self) && size(url(self).getHostname()) > 0)",message="spec.endpoint must be a valid URL with a host name, e.g. https://api.example.com"
	Endpoint string `json:"endpoint,omitempty"`

	// CredentialsSecretRef names the Secret, in the TokenRequest's namespace,
	// that holds the login credentials. Keys by provider: aml: email, password;
	// partner: accessKey, secret; amplifi: credentials.json, or channel plus
	// that channel's fields; oauth2: clientId, clientSecret; http: the keys
	// its templates read.
	// +required
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`

	// SecretName is the target Secret the token is written to, in the
	// TokenRequest's namespace. Defaults to the TokenRequest's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName,omitempty"`

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

	// SecretTemplate holds labels and annotations copied onto the target Secret.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// OAuth2 configures provider oauth2; only allowed with it.
	// +optional
	OAuth2 *OAuth2Settings `json:"oauth2,omitempty"`

	// HTTP describes the login of provider http; only allowed with it.
	// +optional
	HTTP *HTTPSettings `json:"http,omitempty"`
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

// SecretTemplate is metadata copied onto the target Secret.
type SecretTemplate struct {
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
	// ReasonSecretWriteFailed: a login succeeded but the API server refused
	// to write the target Secret; the token is kept in memory and the write
	// retried, without a new login.
	ReasonSecretWriteFailed = "SecretWriteFailed"
	// ReasonRetrying is the Reconciling condition's reason while a failure is retried.
	ReasonRetrying = "Retrying"
	// ReasonSucceeded is LoginAttempt.Result of a successful login.
	ReasonSucceeded = "Succeeded"
)

// TokenRequestStatus is what the operator observed and did.
type TokenRequestStatus struct {
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
	// Result is Succeeded or the reason the attempt failed.
	Result string `json:"result"`
	// AuthenticationFailures counts consecutive AuthenticationFailed results
	// up to and including this attempt.
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
