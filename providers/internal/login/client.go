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
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tokensync/tokensync/providers"
)

// DefaultTimeout bounds a whole login exchange when providers.Options sets
// no Timeout.
const DefaultTimeout = 30 * time.Second

// DefaultUserAgent is sent when providers.Options sets no UserAgent.
const DefaultUserAgent = "tokensync"

// MaxResponseHeaderBytes bounds the response headers read, over HTTP/1 and
// HTTP/2 alike (the transport gives HTTP/2 the same limit as its
// MaxHeaderListSize). A login answer's headers are a few hundred bytes; Go's
// default would let each answer hold 10 MiB of them in memory.
const MaxResponseHeaderBytes = 64 << 10

// HTTPClient returns the client a provider sends with: o.HTTPClient when
// set, otherwise NewHTTPClient(o); with o.CheckURL set, a copy of it whose
// transport asks o.CheckURL(o.Name, url) before every request and sends
// nothing it refuses. The copy shares the original's transport, and so its
// connections.
func HTTPClient(o providers.Options) *http.Client {
	c := o.HTTPClient
	if c == nil {
		c = NewHTTPClient(o)
	}
	if o.CheckURL == nil {
		return c
	}
	checked := *c
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	checked.Transport = &checkedTransport{base: base, provider: o.Name, check: o.CheckURL}
	return &checked
}

// checkedTransport asks the operator's endpoint policy about each request's
// URL before handing it on: the last word on where a login goes, after
// every join, template and library has had its say.
type checkedTransport struct {
	base     http.RoundTripper
	provider string
	check    func(provider string, u *url.URL) error
}

func (t *checkedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.check(t.provider, r.URL); err != nil {
		// A RoundTripper closes the body, even when it sends nothing.
		if r.Body != nil {
			r.Body.Close()
		}
		var pe *providers.Error
		if !errors.As(err, &pe) {
			pe = providers.Errorf(providers.EndpointNotAllowed, "the login URL is refused by the operator's endpoint policy")
		}
		return nil, pe
	}
	return t.base.RoundTrip(r)
}

func (t *checkedTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Clock returns o.Now, or time.Now when it is nil.
func Clock(o providers.Options) func() time.Time {
	if o.Now != nil {
		return o.Now
	}
	return time.Now
}

// NewHTTPClient returns a client with one total timeout (o.Timeout),
// response headers bounded (MaxResponseHeaderBytes), no
// redirects (a login answered with a redirect is a misconfigured endpoint,
// and following it would resend the credentials elsewhere), the proxy from
// the environment, TLS certificates always verified (against o.RootCAs when
// set, else the system's roots), o.DialControl on every connection but
// those to the proxy, and o.UserAgent on every request.
// o.HTTPClient, o.Now, o.CheckURL and o.Name are not read: HTTPClient adds
// the URL check, per provider, to the client this returns.
func NewHTTPClient(o providers.Options) *http.Client {
	return newHTTPClient(o, http.ProxyFromEnvironment)
}

func newHTTPClient(o providers.Options, proxy func(*http.Request) (*url.URL, error)) *http.Client {
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
		// Runs instead of Control when set; the request's context names
		// the URL host dialed for (see userAgentTransport).
		ControlContext: o.DialControlContext,
	}
	dial := dialer.DialContext
	if o.DialControl != nil || o.DialControlContext != nil {
		proxy, dial = exemptProxies(proxy, dialer)
	}
	transport := &http.Transport{
		Proxy:                 proxy,
		DialContext:           dial,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.Timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		// With ForceAttemptHTTP2, the bundled HTTP/2 transport takes its
		// MaxHeaderListSize from this (TestResponseHeaderLimit proves both).
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
	}
	var base http.RoundTripper = transport
	if o.RootCAs != nil {
		base = &rootsTransport{template: transport, roots: o.RootCAs}
	}
	return &http.Client{
		Transport:     &userAgentTransport{base: base, userAgent: o.UserAgent},
		CheckRedirect: refuseRedirect,
		Timeout:       o.Timeout,
	}
}

func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// rootsTransport sends each request with a copy of template that verifies
// servers against the pool roots returns for it. A pool other than the last
// (the CA bundle was read again) gets a copy of its own, so that every
// connection made from then on verifies with it, and the last copy's idle
// connections are closed (its requests in flight end on it). A client's
// tls.Config cannot choose its roots per connection (VerifyConnection only
// adds checks after the verification), and a DialTLSContext would not make
// the TLS connection to an endpoint reached through a proxy, which the
// transport makes itself from TLSClientConfig: a transport per pool serves
// both routes, HTTP/2 included.
type rootsTransport struct {
	template *http.Transport
	roots    func() *x509.CertPool

	mu      sync.Mutex
	pool    *x509.CertPool
	current *http.Transport
}

func (t *rootsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.transportFor(t.roots()).RoundTrip(r)
}

// transportFor returns the copy of the template that verifies with pool.
func (t *rootsTransport) transportFor(pool *x509.CertPool) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current != nil && pool == t.pool {
		return t.current
	}
	next := t.template.Clone()
	next.TLSClientConfig.RootCAs = pool
	if t.current != nil {
		t.current.CloseIdleConnections()
	}
	t.pool, t.current = pool, next
	return next
}

func (t *rootsTransport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current != nil {
		t.current.CloseIdleConnections()
	}
}

// maxProxies bounds the proxy addresses remembered: they come from the
// operator's environment (HTTPS_PROXY, HTTP_PROXY), so a handful at most.
const maxProxies = 16

// exemptProxies wraps proxy and the dialer so that connections to a proxy
// proxy chose skip dialer.Control. Through a proxy the address dialed is
// the proxy's, not the endpoint's, and the operator chose it: a proxy on
// loopback (a sidecar) must not be refused as a tenant's loopback endpoint
// would be. The exemption is for the proxy's address exactly as the
// transport dials it (host:port, before resolution), so only an endpoint
// written with the very same host and port, and excluded from the proxy by
// NO_PROXY, is dialed without the check, and it reaches the proxy itself.
func exemptProxies(proxy func(*http.Request) (*url.URL, error), dialer *net.Dialer) (
	func(*http.Request) (*url.URL, error), func(ctx context.Context, network, addr string) (net.Conn, error),
) {
	if proxy == nil {
		return nil, dialer.DialContext
	}
	var (
		mu      sync.Mutex
		proxies = map[string]bool{}
	)
	unchecked := *dialer
	unchecked.Control, unchecked.ControlContext = nil, nil
	seeProxy := func(r *http.Request) (*url.URL, error) {
		u, err := proxy(r)
		if u != nil && err == nil {
			mu.Lock()
			if len(proxies) < maxProxies {
				proxies[proxyAddr(u)] = true
			}
			mu.Unlock()
		}
		return u, err
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		isProxy := proxies[strings.ToLower(addr)]
		mu.Unlock()
		if isProxy {
			return unchecked.DialContext(ctx, network, addr)
		}
		return dialer.DialContext(ctx, network, addr)
	}
	return seeProxy, dial
}

// proxyAddr is the address http.Transport dials for proxy u: host:port,
// the port defaulted by the proxy's scheme.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		default:
			port = "80"
		}
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), port))
}

// userAgentTransport sets the configured User-Agent on every request, and
// names the request's URL host in its context for the dial control: the
// transport dials with the request's context values, and pools connections
// by that host, so a connection dialed for one host never serves another.
type userAgentTransport struct {
	base      http.RoundTripper
	userAgent string
}

func (t *userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify the caller's request.
	r = r.Clone(providers.WithDialHost(r.Context(), r.URL.Host))
	r.Header.Set("User-Agent", t.userAgent)
	return t.base.RoundTrip(r)
}

func (t *userAgentTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
