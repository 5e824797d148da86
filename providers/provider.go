// Package providers defines the small contract every login provider meets:
// given an endpoint and credentials, log in and return a Token. Providers know
// nothing of Kubernetes; the controller turns a Secret into Credentials and a
// Token into a Secret.
package providers

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

// Credentials are the keys and values of a credentials Secret.
type Credentials map[string][]byte

// Token is the result of a successful login.
type Token struct {
	// Value is the token itself. It must never be logged.
	Value string
	// ObtainedAt is our local time when the login started, before the
	// request was sent. Relative lifetimes are counted from it, so time
	// spent waiting for the answer never lengthens a token.
	ObtainedAt time.Time
	// ExpiresAt is when the token stops being valid, in our clock.
	ExpiresAt time.Time
	// Extra holds further values worth storing next to the token
	// (AmpliFi's userId), keyed by the Secret data key to use.
	Extra map[string]string
}

// Provider logs in to one third-party API.
type Provider interface {
	// Login exchanges credentials for a token at endpoint (a base URL).
	// Errors are *Error values with a Kind the controller can act on.
	Login(ctx context.Context, endpoint string, creds Credentials) (*Token, error)
}

// Options configure a provider: what the operator sets for every login. The
// zero value is ready to use.
type Options struct {
	// Timeout bounds a whole login exchange: connecting, sending and reading
	// the answer. Zero means 30 seconds.
	Timeout time.Duration
	// UserAgent is sent with every login request; empty means "tokensync".
	UserAgent string
	// DialControl, when set, runs for every connection before it is made
	// (net.Dialer.Control), so a policy can refuse the address actually
	// dialed after DNS resolution. Returning a *Error (typically
	// EndpointNotAllowed) makes Login fail with that error as is; any other
	// error is reported as ProviderUnavailable. When a proxy is configured
	// in the environment, the address dialed is the proxy's, which the
	// operator chose: connections to it are not passed to DialControl.
	DialControl func(network, address string, c syscall.RawConn) error
	// DialControlContext is DialControl with the context of the request
	// the connection is dialed for (net.Dialer.ControlContext), in which
	// DialHost names the URL host the address was resolved from. When
	// set, it runs instead of DialControl.
	DialControlContext func(ctx context.Context, network, address string, c syscall.RawConn) error
	// CheckURL, when set, is asked about every request before it is sent,
	// with the provider's Name and the request's URL, whatever client
	// sends it (HTTPClient included): a policy on the URL actually
	// requested, which no provider code path can get around. An error
	// fails the login with nothing sent: a *Error as is, any other error
	// as EndpointNotAllowed.
	CheckURL func(provider string, u *url.URL) error
	// RootCAs, when set, returns the certificate authorities the TLS
	// connections of logins verify servers with; nil means the system's
	// roots. It is asked before every request, so it must be cheap. When
	// it returns another pool than the last, the connections made from
	// then on verify with the new one, and idle connections verified with
	// the old one are closed: a CA bundle read again is used from the next
	// login on. The operator sets it from --ca-bundle-file.
	RootCAs func() *x509.CertPool
	// Name is the provider's name in TokenRequests (spec.provider), passed
	// to CheckURL. NewRegistry sets it from each Registration.
	Name string
	// Now is the local clock, read for Token.ObtainedAt and expiry
	// computations; nil means time.Now. Tests inject a fake clock.
	Now func() time.Time
	// HTTPClient, when set, sends the login requests instead of a client
	// built from Timeout, UserAgent, RootCAs and the dial controls (which
	// are then ignored). Tests use it; whatever client is given, redirects
	// are never followed.
	HTTPClient *http.Client
}

// LoginURLer is implemented by providers that can say, without any request,
// which URL a login at endpoint is sent to: the endpoint with the provider's
// login path joined. The operator's endpoint policy judges that URL, not the
// endpoint alone, so that a path cannot lead out of an allowed prefix.
// Call LoginURL rather than the method: it answers for any Provider.
type LoginURLer interface {
	// LoginURL returns the URL Login(ctx, endpoint, ...) would send to, or
	// the *Error Login would fail with before sending anything (an
	// unusable endpoint or login path).
	LoginURL(endpoint string) (string, error)
}

// LoginURL returns the URL p's login at endpoint is sent to: p's own answer
// when it is a LoginURLer, otherwise the endpoint itself. A Configurable
// provider answers once configured (WithSettings), since its settings may
// hold the path.
func LoginURL(p Provider, endpoint string) (string, error) {
	if l, ok := p.(LoginURLer); ok {
		return l.LoginURL(endpoint)
	}
	return endpoint, nil
}

// Validator is implemented by providers that can tell, without any request,
// that credentials are certainly wrong.
type Validator interface {
	Validate(creds Credentials) error
}

// Configurable is implemented by providers whose login the TokenRequest
// describes in a block named after the provider (spec.oauth2, spec.http).
// settings is the JSON of that block;
// the provider package decodes it into its own struct with the same JSON
// field names (providers import nothing of Kubernetes), and refuses fields
// it does not know. WithSettings returns the provider to log in with; a
// settings problem (a template that does not parse, a bad JSON pointer) is
// an *Error of kind InvalidTemplate, found before anything is sent.
type Configurable interface {
	WithSettings(settings []byte) (Provider, error)
}

// CredentialUser is implemented by configured providers whose credential
// keys follow from their settings (the keys an http login's templates
// name). The controller then asks the provider rather than its
// Registration, which implements it too, which keys to name in messages and
// which part of a credentials Secret would be sent.
type CredentialUser interface {
	// CredentialKeyNames names the keys for a message, e.g. "email, password".
	CredentialKeyNames() string
	// UsedCredentials returns the part of creds a login would send.
	UsedCredentials(creds Credentials) Credentials
}

// ErrorKind classifies a login failure by what the caller should do about it.
type ErrorKind string

const (
	// InvalidCredentials: fields missing or malformed, caught before any request.
	InvalidCredentials ErrorKind = "InvalidCredentials"
	// AuthenticationFailed: the provider rejected the credentials, in the
	// shape its documentation gives a rejection. Only this kind is a step
	// toward the lockout.
	AuthenticationFailed ErrorKind = "AuthenticationFailed"
	// RequestBlocked: HTTP 401 or 403 without the provider's documented
	// shape (an HTML page, an empty body, another JSON document):
	// something in front of the provider (a web application firewall, a
	// proxy) refused the request, and the credentials were not judged.
	// Retried slowly, and never a step toward the lockout.
	RequestBlocked ErrorKind = "RequestBlocked"
	// ProviderUnavailable: network errors, timeouts, 429 and 5xx; worth retrying.
	ProviderUnavailable ErrorKind = "ProviderUnavailable"
	// InvalidResponse: a 2xx answer the provider's documentation does not allow.
	InvalidResponse ErrorKind = "InvalidResponse"
	// EndpointNotAllowed: the endpoint is refused by the operator's policy; nothing was sent.
	EndpointNotAllowed ErrorKind = "EndpointNotAllowed"
	// InvalidTemplate: the provider settings of the TokenRequest cannot be
	// used (a template that does not parse or render, a bad JSON pointer);
	// nothing was sent.
	InvalidTemplate ErrorKind = "InvalidTemplate"
)

// Error is a classified login failure. Its message is written for users and
// never contains a credential, a token or a provider response body.
type Error struct {
	Kind    ErrorKind
	Message string
	// RetryAfter is the provider's own hint (Retry-After), zero when absent.
	RetryAfter time.Duration
	// Detail says, for the operator's log only, what Message leaves out on
	// purpose (a connection refused, reset or timed out, which a
	// TokenRequest's author must not tell apart). It is never put in a
	// status, an event or a metric, and like Message it holds only our own
	// words: never a credential, a token or any part of an answer.
	Detail string
	// Status is the HTTP status of the answer the error is about, zero when
	// no answer came (a connection that failed or timed out) or nothing was
	// sent.
	Status int
	// Unavailable: the endpoint's host could not serve the request at all,
	// whoever's credentials were sent: the connection was refused, reset or
	// timed out, no answer came within the time limit, or the answer was
	// HTTP 502, 503 or 504. A 500, 408 or 429 is not: it may be one
	// account's (a quota, a request the provider chokes on). The operator
	// counts these toward marking the host down (controllers/hosthealth.go).
	Unavailable bool
}

func (e *Error) Error() string { return e.Message }

// Errorf builds a classified error. Never pass secret values or response bodies as arguments.
func Errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of a provider error, and ProviderUnavailable for
// any other error (a failure we cannot classify is treated as transient).
func KindOf(err error) ErrorKind {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return ProviderUnavailable
}

// RetryAfterOf returns the provider's Retry-After hint carried by err, if any.
func RetryAfterOf(err error) time.Duration {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.RetryAfter
	}
	return 0
}
