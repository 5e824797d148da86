// Package login is the plumbing the providers share to send a login: the
// HTTP client they build from providers.Options, one exchange (Send, and
// SendJSON for JSON bodies; Transport for a library that sends the request
// itself) that classifies what every provider would classify alike
// (transport errors, 408/429/5xx, redirects, oversized answers), and the
// checks of credentials and token values made before and after it. What an answer means is each
// provider's business; this package never reads a body for meaning.
//
// Errors are *providers.Error values whose messages quote no credential,
// token or response body.
package login

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/tokensync/tokensync/providers"
)

// DefaultTimeout bounds a whole login exchange when providers.Options sets
// no Timeout.
const DefaultTimeout = 30 * time.Second

// DefaultUserAgent is sent when providers.Options sets no UserAgent.
const DefaultUserAgent = "tokensync"

// HTTPClient returns the client a provider sends with: o.HTTPClient when
// set, otherwise NewHTTPClient(o).
func HTTPClient(o providers.Options) *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return NewHTTPClient(o)
}

// Clock returns o.Now, or time.Now when it is nil.
func Clock(o providers.Options) func() time.Time {
	if o.Now != nil {
		return o.Now
	}
	return time.Now
}

// NewHTTPClient returns a client with one total timeout (o.Timeout), no
// redirects (a login answered with a redirect is a misconfigured endpoint,
// and following it would resend the credentials elsewhere), the proxy from
// the environment, TLS certificates always verified, o.DialControl on every
// connection and o.UserAgent on every request. o.HTTPClient and o.Now are
// not read.
func NewHTTPClient(o providers.Options) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
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
