package providers

import (
	"crypto/tls"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Version is tokensync's version, set at build time with
// -ldflags "-X github.com/tokensync/tokensync/providers.Version=v1.2.3".
// It only feeds the default User-Agent.
var Version = "dev"

// DefaultTimeout bounds a whole login exchange: connecting, sending and
// reading the answer.
const DefaultTimeout = 30 * time.Second

// DefaultUserAgent is the User-Agent sent when none is configured.
func DefaultUserAgent() string { return "tokensync/" + Version }

// Options configure a provider. The zero value is ready to use.
type Options struct {
	// HTTPClient sends the login requests; nil means NewHTTPClient(ClientOptions{}).
	// Whatever client is given, redirects are never followed (see SendJSON).
	HTTPClient *http.Client
	// Now is the local clock, read for Token.ObtainedAt and expiry
	// computations; nil means time.Now. Tests inject a fixed clock.
	Now func() time.Time
}

// WithDefaults returns o with its nil fields filled in.
func (o Options) WithDefaults() Options {
	if o.HTTPClient == nil {
		o.HTTPClient = NewHTTPClient(ClientOptions{})
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// ClientOptions configure NewHTTPClient. The zero value is ready to use.
type ClientOptions struct {
	// Timeout bounds a whole request, answer included; zero means DefaultTimeout.
	Timeout time.Duration
	// UserAgent is sent with every request; empty means DefaultUserAgent().
	UserAgent string
	// DialControl, when set, runs for every connection before it is made
	// (net.Dialer.Control), so a policy can refuse the address actually
	// dialed after DNS resolution. Returning a *Error (typically
	// EndpointNotAllowed) makes Login fail with that error as is; any other
	// error is reported as ProviderUnavailable. When a proxy is configured
	// in the environment, the address dialed is the proxy's.
	DialControl func(network, address string, c syscall.RawConn) error
}

// NewHTTPClient returns the client providers use by default: one total
// timeout, no redirects (a login answered with a redirect is a
// misconfigured endpoint, and following it would resend the credentials
// elsewhere), the proxy from the environment, TLS certificates always
// verified, and a User-Agent on every request.
func NewHTTPClient(o ClientOptions) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent()
	}
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control:   o.DialControl,
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.Timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
	}
	return &http.Client{
		Transport:     &userAgentTransport{base: transport, userAgent: o.UserAgent},
		CheckRedirect: refuseRedirect,
		Timeout:       o.Timeout,
	}
}

func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// userAgentTransport sets the configured User-Agent on every request.
type userAgentTransport struct {
	base      http.RoundTripper
	userAgent string
}

func (t *userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify the caller's request.
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", t.userAgent)
	return t.base.RoundTrip(r)
}

func (t *userAgentTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
