package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Providers whose login the TokenRequest describes: their settings are
// spec.oauth2 and spec.http, each block named after its provider. The
// provider packages read these blocks as JSON, with the same field names
// (see ProviderSettings, generated in zz_generated.providers.go).
const (
	ProviderOAuth2 Provider = "oauth2"
	ProviderHTTP   Provider = "http"
)

// OAuth2Settings configure provider oauth2: the OAuth 2.0 client
// credentials grant (RFC 6749 §4.4) against spec.endpoint, the token URL,
// with clientId and clientSecret from the credentials Secret.
type OAuth2Settings struct {
	// Scopes requested, sent space-separated as the scope parameter.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Scopes []OAuth2Scope `json:"scopes,omitempty"`

	// Parameters are further form parameters of the token request, such
	// as audience or resource. grant_type, scope, client_id and
	// client_secret are set by the grant.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) > 0 && size(k) <= 128 && !(k in ['grant_type', 'scope', 'client_id', 'client_secret']))",message="spec.oauth2.parameters keys must be 1 to 128 characters and must not be grant_type, scope, client_id or client_secret: the grant sets those (scopes go in spec.oauth2.scopes)"
	Parameters map[string]OAuth2ParameterValue `json:"parameters,omitempty"`

	// ClientAuth is how the client authenticates: basic (HTTP Basic, the
	// id and secret form-encoded first, as RFC 6749 §2.3.1 says) or post
	// (client_id and client_secret in the form).
	// +optional
	// +kubebuilder:default=basic
	ClientAuth OAuth2ClientAuth `json:"clientAuth,omitempty"`

	// DefaultLifetime is the tokens' lifetime when an answer has no
	// expires_in and its access token is not a JWT with an exp claim.
	// Without it, such an answer is an InvalidResponse.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="spec.oauth2.defaultLifetime must be at least 1s"
	DefaultLifetime *metav1.Duration `json:"defaultLifetime,omitempty"`
}

// OAuth2Scope is one scope token (RFC 6749 §3.3): printable ASCII without
// spaces, quotes or backslashes.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=256
// +kubebuilder:validation:Pattern=`^[\x21\x23-\x5B\x5D-\x7E]+$`
type OAuth2Scope string

// OAuth2ParameterValue is the value of a token request parameter.
// +kubebuilder:validation:MaxLength=2048
type OAuth2ParameterValue string

// OAuth2ClientAuth is a client authentication method.
// +kubebuilder:validation:Enum=basic;post
type OAuth2ClientAuth string

// HTTPSettings configure provider http: how to log in, and where the token
// and its expiry are in the answer. Values of headers and body fields are
// Go templates over the credentials Secret's keys ({{ .email }},
// {{ index . "client-id" }}), in tokensync's template sandbox, the one
// spec.secretTemplate.data uses: the functions and, or, not, eq, ne, lt,
// le, gt, ge, len, index, slice, print, urlquery, b64enc, b64dec, trim,
// trimPrefix, trimSuffix, replace, upper, lower, quote; if / else, no
// range, with, define or template; at most 64 KiB per value and 1 MiB for
// the whole request.
// +kubebuilder:validation:XValidation:rule="!has(self.body) || !has(self.method) || self.method != 'GET'",message="spec.http.body is not allowed with method GET"
type HTTPSettings struct {
	// Method of the login request.
	// +optional
	// +kubebuilder:default=POST
	Method HTTPMethod `json:"method,omitempty"`

	// Path is joined to spec.endpoint, e.g. /api/get-access-token. It
	// cannot lead out of the endpoint's path: "." and ".." segments (also
	// percent-encoded, as %2e), backslashes and encoded slashes are refused.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#') && !self.matches('[\\\\s\\\\x00-\\\\x1f\\\\x7f]')",message="spec.http.path must be a path only: no query (?), fragment (#), whitespace or control characters"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)([.]|%2[eE]){1,2}((;|%00|%3[bB])[^/]*)?(/|$)')",message="spec.http.path must not contain '.' or '..' segments, also percent-encoded (%2e) or with ';' parameters: joined to spec.endpoint they would lead out of its path; write the path below the endpoint, e.g. /api/login"
	// +kubebuilder:validation:XValidation:rule="!self.contains('\\\\') && !self.matches('(?i)%(2f|5c)')",message="spec.http.path must not contain backslashes or percent-encoded slashes or backslashes (%2f, %5c): a server may read them as separators; write the path with plain '/'"
	Path string `json:"path,omitempty"`

	// Headers of the login request: names and value templates.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 128 && k.matches('^[A-Za-z0-9][A-Za-z0-9-]*$'))",message="spec.http.headers keys must be header names: letters, digits and '-', at most 128 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k.lowerAscii() in ['host', 'content-length', 'transfer-encoding', 'connection', 'user-agent']))",message="spec.http.headers must not set Host, Content-Length, Transfer-Encoding, Connection or User-Agent: the HTTP client sets them"
	Headers map[string]Template `json:"headers,omitempty"`

	// Body of the login request.
	// +optional
	Body *HTTPBody `json:"body,omitempty"`

	// Token says where the token is in a successful answer.
	// +required
	Token HTTPToken `json:"token"`

	// Expiry says when the token expires.
	// +required
	Expiry HTTPExpiry `json:"expiry"`

	// Success is for APIs that answer a failed login with HTTP 2xx: the
	// answer is a success only when the value at jsonPointer equals equals.
	// +optional
	Success *HTTPSuccess `json:"success,omitempty"`
}

// HTTPMethod is the method of a login request.
// +kubebuilder:validation:Enum=GET;POST;PUT;PATCH
type HTTPMethod string

// Template is a Go template rendered with the credentials Secret's keys,
// in tokensync's template sandbox (see HTTPSettings). The operator checks
// a template fully when it renders it; these rules refuse the common
// mistakes at once.
// +kubebuilder:validation:MaxLength=4096
// +kubebuilder:validation:XValidation:rule="!self.matches('\\\\{\\\\{-?\\\\s*(else\\\\s+)?(range|with|define|template|block)\\\\b')",message="templates must not use range, with, define, template or block: a template has no loops and calls no other template; read each key as .key or index . \"key\", and choose with if / else"
// +kubebuilder:validation:XValidation:rule="!self.matches('\\\\{\\\\{(-?|[^}]*[(|])\\\\s*(printf|call)\\\\b')",message="templates must not call printf or call: use print (a printf width can build gigabytes)"
type Template string

// JSONPointer is an RFC 6901 JSON pointer, e.g. /data/access_token.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:Pattern=`^(/([^~/]|~[01])*)+$`
type JSONPointer string

// HTTPBody is the body of a login request: fields rendered from templates,
// sent as a JSON object of strings or as a form.
type HTTPBody struct {
	// Format of the body: json (Content-Type application/json) or form
	// (application/x-www-form-urlencoded).
	// +optional
	// +kubebuilder:default=json
	Format HTTPBodyFormat `json:"format,omitempty"`

	// Fields are the body's names and value templates.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) > 0 && size(k) <= 256)",message="spec.http.body.fields keys must be 1 to 256 characters"
	Fields map[string]Template `json:"fields,omitempty"`
}

// HTTPBodyFormat is how body fields are encoded.
// +kubebuilder:validation:Enum=json;form
type HTTPBodyFormat string

// HTTPToken says where the token is: exactly one of jsonPointer, rawBody
// and header.
// +kubebuilder:validation:XValidation:rule="(has(self.jsonPointer) ? 1 : 0) + (has(self.rawBody) && self.rawBody ? 1 : 0) + (has(self.header) ? 1 : 0) == 1",message="spec.http.token must set exactly one of jsonPointer (where the token is in a JSON answer), rawBody: true (the answer is the token) or header (a response header holds it)"
type HTTPToken struct {
	// JSONPointer locates the token, a string, in a JSON answer.
	// +optional
	JSONPointer JSONPointer `json:"jsonPointer,omitempty"`

	// RawBody: the whole answer is the token (trimmed; a JSON string is unquoted).
	// +optional
	RawBody bool `json:"rawBody,omitempty"`

	// Header names the response header holding the token.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9-]*$`
	Header string `json:"header,omitempty"`
}

// HTTPExpiry says when the token expires: the earlier of the token's own
// exp (fromJWT) and the value at jsonPointer, when either is there;
// otherwise lifetime, counted from when the login started.
// +kubebuilder:validation:XValidation:rule="(has(self.fromJWT) && self.fromJWT) || has(self.jsonPointer) || has(self.lifetime)",message="spec.http.expiry must set at least one of fromJWT: true, jsonPointer (with format) or lifetime"
// +kubebuilder:validation:XValidation:rule="has(self.jsonPointer) == has(self.format)",message="spec.http.expiry.format (RFC3339, UnixSeconds or SecondsFromNow) is required with expiry.jsonPointer, and only allowed with it"
type HTTPExpiry struct {
	// FromJWT: the token is a JWT; its exp claim (exp - iat from the
	// login's start, when it has iat) says when it expires.
	// +optional
	FromJWT bool `json:"fromJWT,omitempty"`

	// JSONPointer locates the expiry in a JSON answer, read as format says.
	// +optional
	JSONPointer JSONPointer `json:"jsonPointer,omitempty"`

	// Format of the value at jsonPointer: RFC3339 (a time), UnixSeconds
	// (seconds since 1970) or SecondsFromNow (a lifetime in seconds).
	// +optional
	Format HTTPExpiryFormat `json:"format,omitempty"`

	// Lifetime of a token whose expiry neither fromJWT nor jsonPointer
	// gives, from the login's start.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="spec.http.expiry.lifetime must be at least 1s"
	Lifetime *metav1.Duration `json:"lifetime,omitempty"`
}

// HTTPExpiryFormat is how an expiry in the answer is written.
// +kubebuilder:validation:Enum=RFC3339;UnixSeconds;SecondsFromNow
type HTTPExpiryFormat string

// HTTPSuccess is the success rule of a 2xx answer.
type HTTPSuccess struct {
	// JSONPointer locates the value to compare.
	// +required
	JSONPointer JSONPointer `json:"jsonPointer"`

	// Equals is the value that means success: a string as it is, any other
	// JSON value by its text (true, 200).
	// +required
	// +kubebuilder:validation:MaxLength=256
	Equals string `json:"equals"`
}
