package login

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokensync/tokensync/internal/urlpath"
	"github.com/tokensync/tokensync/providers"
)

// MaxResponseBytes bounds how much of an answer is read. Login answers are
// a few hundred bytes; anything near this size is not a login answer.
const MaxResponseBytes = 1 << 20

// maxRetryAfter clamps a provider's Retry-After hint, so a garbled or hostile
// header cannot park a login for months.
const maxRetryAfter = 24 * time.Hour

// JoinURL appends path (escaped, as sent) to the endpoint (a base URL,
// possibly with a base path and a trailing slash); an empty path leaves it
// as it is. The endpoint must be an absolute http or https URL without user
// information; it is never quoted back in errors, since a mistyped endpoint
// may hold something secret. Neither may have a path a server could read as
// leaving the endpoint's (a "." or ".." segment, also percent-encoded; an
// encoded slash): those are refused, never resolved, so that the URL
// joined is the one the endpoint policy judged.
func JoinURL(endpoint, path string) (string, error) {
	// ASCII whitespace only: a Unicode space is part of what was written
	// (a host "example.com\u00a0" is not "example.com"), and the endpoint
	// policy refuses it.
	endpoint = strings.Trim(endpoint, " \t\r\n")
	if endpoint == "" {
		return "", providers.Errorf(providers.EndpointNotAllowed, "no endpoint is configured")
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", providers.Errorf(providers.EndpointNotAllowed, "the endpoint is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", providers.Errorf(providers.EndpointNotAllowed, "the endpoint must be an http or https URL")
	}
	if u.Host == "" || u.Opaque != "" {
		return "", providers.Errorf(providers.EndpointNotAllowed, "the endpoint must be an absolute URL with a host")
	}
	if u.User != nil {
		return "", providers.Errorf(providers.EndpointNotAllowed, "the endpoint must not contain user information")
	}
	if strings.Contains(endpoint, `\`) {
		// url.Parse escapes a backslash as %5C: look at what was written.
		return "", providers.Errorf(providers.EndpointNotAllowed, "the endpoint's path is refused: %v", urlpath.ErrSeparator)
	}
	if err := urlpath.Check(u.EscapedPath()); err != nil {
		return "", providers.Errorf(providers.EndpointNotAllowed, "the endpoint's path is refused: %v", err)
	}
	if err := urlpath.Check(path); err != nil {
		return "", providers.Errorf(providers.EndpointNotAllowed, "the login path is refused: %v", err)
	}
	u.Fragment, u.RawFragment = "", ""
	if path == "" {
		// The endpoint is the whole URL (an OAuth2 token URL): kept as
		// given, trailing slash included.
		return u.String(), nil
	}
	return u.JoinPath(path).String(), nil
}

// JSONRequest is one JSON login request.
type JSONRequest struct {
	// Provider is the provider's name as users know it ("AML Watcher"), used in messages.
	Provider string
	Method   string
	URL      string
	Body     []byte
	// Accept, when set, is sent as the Accept header.
	Accept string
}

// Request is one login request of any shape.
type Request struct {
	// Provider is the provider's name as users know it, used in messages.
	Provider string
	Method   string
	URL      string
	// Body is sent as is; nil sends none.
	Body []byte
	// Header is sent with the request (Content-Type included); the
	// client's User-Agent replaces any given.
	Header http.Header
}

// Reply is an answer Send left for the provider to interpret:
// a 2xx or a 4xx other than 408 and 429, with its whole body, within
// the bounds of CheckJSON when it is JSON.
type Reply struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// SendJSON sends r with Content-Type application/json (see Send).
func SendJSON(ctx context.Context, client *http.Client, now func() time.Time, r JSONRequest) (*Reply, error) {
	header := http.Header{"Content-Type": {"application/json"}}
	if r.Accept != "" {
		header.Set("Accept", r.Accept)
	}
	return Send(ctx, client, now, Request{Provider: r.Provider, Method: r.Method, URL: r.URL, Body: r.Body, Header: header})
}

// Send sends r and returns the answer. It classifies what every provider
// would classify alike:
//   - transport errors, timeouts and cancellation of ctx (which aborts the
//     request): ProviderUnavailable, or the *providers.Error a DialControl
//     returned;
//   - 408, 429 and 5xx: ProviderUnavailable, with RetryAfter from the
//     Retry-After header (seconds or an HTTP date);
//   - 3xx (redirects are never followed) and statuses outside 200-599:
//     InvalidResponse;
//   - a body over MaxResponseBytes, headers over MaxResponseHeaderBytes,
//     or JSON past the bounds of CheckJSON: InvalidResponse.
//
// now is the local clock, used to turn a Retry-After date into a duration.
func Send(ctx context.Context, client *http.Client, now func() time.Time, r Request) (*Reply, error) {
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return nil, providers.Errorf(providers.EndpointNotAllowed, "cannot build a request to %s for the endpoint", r.Provider)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	// Clients built by NewHTTPClient replace this with their configured value.
	req.Header.Set("User-Agent", DefaultUserAgent)

	// Never follow a redirect, even with a caller-supplied client: a 307 or
	// 308 would resend the credentials to wherever it points.
	noRedirects := *client
	noRedirects.CheckRedirect = refuseRedirect

	resp, err := noRedirects.Do(req)
	if err != nil {
		return nil, transportError(ctx, r.Provider, req.URL.Host, err)
	}
	return readReply(ctx, r.Provider, now, resp)
}

// readReply classifies an answer and reads its body; it closes the body.
func readReply(ctx context.Context, provider string, now func() time.Time, resp *http.Response) (*Reply, error) {
	defer resp.Body.Close()
	status := resp.StatusCode
	switch {
	case status >= 300 && status < 400:
		discard(resp.Body)
		e := providers.Errorf(providers.InvalidResponse,
			"%s answered with a redirect (HTTP %d), which tokensync does not follow: set the endpoint to the provider's final https URL",
			provider, status)
		e.Status = status
		return nil, e
	case status == http.StatusTooManyRequests:
		discard(resp.Body)
		e := providers.Errorf(providers.ProviderUnavailable, "%s is limiting the rate of requests (HTTP %d)", provider, status)
		e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), now())
		e.Status = status
		return nil, e
	case status == http.StatusRequestTimeout || (status >= 500 && status < 600):
		discard(resp.Body)
		e := providers.Errorf(providers.ProviderUnavailable, "%s is unavailable (HTTP %d)", provider, status)
		e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), now())
		e.Status, e.Unavailable = status, hostUnavailableStatus(status)
		return nil, e
	case status < 200 || status >= 600:
		discard(resp.Body)
		e := providers.Errorf(providers.InvalidResponse, "%s answered with an unexpected HTTP status %d", provider, status)
		e.Status = status
		return nil, e
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, readError(ctx, provider, status, err)
	}
	if len(body) > MaxResponseBytes {
		return nil, providers.Errorf(providers.InvalidResponse, "%s sent a response body larger than 1 MiB (HTTP %d)", provider, status)
	}
	if err := CheckJSON(provider, status, body); err != nil {
		return nil, err
	}
	return &Reply{StatusCode: status, Header: resp.Header, Body: body}, nil
}

// Transport is an http.RoundTripper for libraries that build and send the
// login request themselves (golang.org/x/oauth2): it answers as Send does.
// What Send classifies (transport errors, redirects, 408, 429, 5xx,
// oversized answers, JSON past CheckJSON's bounds) comes back from
// RoundTrip as the *providers.Error Send would return, which http.Client
// wraps in a *url.Error (errors.As finds it); any other answer comes back with its body read in full. Give it to
// an http.Client without a Timeout (bound the request with its context
// instead: a client timeout replaces the error with one of its own) and
// that refuses redirects.
type Transport struct {
	// Provider is the provider's name as users know it, used in messages.
	Provider string
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Now is the local clock (Retry-After dates); nil means time.Now.
	Now func() time.Time
	// Seen, when set, is called with each answer passed on.
	Seen func(*Reply)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base, now := t.Base, t.Now
	if base == nil {
		base = http.DefaultTransport
	}
	if now == nil {
		now = time.Now
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, transportError(req.Context(), t.Provider, req.URL.Host, err)
	}
	reply, err := readReply(req.Context(), t.Provider, now, resp)
	if err != nil {
		return nil, err
	}
	if t.Seen != nil {
		t.Seen(reply)
	}
	resp.Body = io.NopCloser(bytes.NewReader(reply.Body))
	resp.ContentLength = int64(len(reply.Body))
	return resp, nil
}

// NoRedirects is an http.Client CheckRedirect that never follows one.
func NoRedirects(req *http.Request, via []*http.Request) error { return refuseRedirect(req, via) }

// TransportError classifies an error of a request that did not come
// through Transport's own classification (see Send).
func TransportError(ctx context.Context, provider, host string, err error) error {
	return transportError(ctx, provider, host, err)
}

// hostUnavailableStatus reports whether an answer's status says that the
// host could not serve the request at all, whoever sent it: 502, 503 and
// 504 (a gateway without a working server behind it, a server down or
// overloaded). A 500 is not: a provider answers it as often to one
// account's request it chokes on as in an outage; nor are 408 and 429,
// often one client's own.
func hostUnavailableStatus(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// discard drains a little of an unwanted body so the connection can be reused.
func discard(body io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
}

// ParseRetryAfter reads a Retry-After header: delay seconds or an HTTP date
// (taken relative to now). It returns zero for an absent, malformed or past
// value, and clamps long hints to a day.
func ParseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(value, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || secs > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(value); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// transportError classifies a failed round trip. Messages are our own words:
// Go's errors can quote bytes of a malformed answer. A connection that
// failed or timed out reads the same whatever the cause (connectionFailed);
// the cause goes to Detail, for the operator's log.
func transportError(ctx context.Context, provider, host string, err error) error {
	var pe *providers.Error
	if errors.As(err, &pe) {
		return pe // a DialControl policy's verdict
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return providers.Errorf(providers.ProviderUnavailable, "the login request to %s was cancelled", provider)
	}
	if headersTooLarge(err) {
		return providers.Errorf(providers.InvalidResponse,
			"%s answered with response headers larger than 64 KiB, the most tokensync reads", provider)
	}
	if http2HeadersRefused(err) {
		return providers.Errorf(providers.InvalidResponse,
			"%s answered with response headers larger than 64 KiB, the most tokensync reads, or HTTP/2 headers that cannot be decoded", provider)
	}
	reason := networkReason(ctx, err)
	told := connectionFailed
	if reason == reasonUnresolved || reason == reasonUntrusted {
		told = reason
	}
	e := providers.Errorf(providers.ProviderUnavailable, "could not reach %s at %s: %s", provider, host, told)
	e.Detail, e.Unavailable = reason, unavailableReason(reason)
	return e
}

// connectionFailed is what a TokenRequest is told of a connection that
// failed or timed out, whatever the cause: refused (a closed port),
// filtered (no answer to the connection attempt), reset, a server that
// does not speak TLS or breaks off the handshake, or one too slow to
// answer. Its author chooses the endpoint, so telling these apart would
// tell them which ports of a host listen and what speaks there. A timeout
// after the connection was made is not told apart either: the client's
// total timeout and the context's deadline cut a connection attempt and a
// wait for the answer alike, with the same error, so no error can say
// reliably which it was. Only a name that does not resolve (which says
// nothing of ports) and a certificate that cannot be verified (the person
// must fix trust) are told as such.
const connectionFailed = "the connection failed, or no answer came within the time limit (the operator's log has the cause)"

// The causes networkReason names that a TokenRequest is told as they are.
const (
	reasonUnresolved = "the host name could not be resolved"
	reasonUntrusted  = "the server's TLS certificate could not be verified"
)

// The causes networkReason names that say the host could not serve the
// request at all (providers.Error.Unavailable): a connection refused,
// reset or cut short, or no answer in time. A name that does not resolve,
// a certificate that cannot be verified or a server that does not speak
// TLS say something is wrong with the endpoint, not that its host is down.
const (
	reasonLookupTimeout   = "the host name lookup timed out"
	reasonDialTimeout     = "the connection attempt timed out (a filtered port or an unreachable host)"
	reasonTLSTimeout      = "the TLS handshake timed out"
	reasonNoAnswer        = "no answer within the time limit"
	reasonRefused         = "connection refused"
	reasonClosed          = "the connection was closed before a complete answer"
	reasonHostUnreachable = "the host is unreachable"
)

// unavailableReason reports whether networkReason's reason says the host
// could not serve the request (providers.Error.Unavailable).
func unavailableReason(reason string) bool {
	switch reason {
	case reasonLookupTimeout, reasonDialTimeout, reasonTLSTimeout, reasonNoAnswer, reasonRefused, reasonClosed, reasonHostUnreachable:
		return true
	}
	return false
}

// headersTooLarge reports whether err is net/http's refusal of response
// headers over MaxResponseHeaderBytes: HTTP/1's, or HTTP/2's when the list
// passes the limit within one frame. Neither is an exported error, so
// their texts are matched (TestResponseHeaderLimit fails should either
// change).
func headersTooLarge(err error) bool {
	text := err.Error()
	return strings.Contains(text, "server response headers exceeded") || // HTTP/1
		strings.Contains(text, "response header list larger than advertised limit") // HTTP/2
}

// http2HeadersRefused reports whether err is the HTTP/2 connection error
// the bundled transport answers headers past its MaxHeaderListSize with,
// more often than the error above: COMPRESSION_ERROR for one field longer
// than the whole limit (the HPACK decoder refuses the string),
// PROTOCOL_ERROR for a list that goes on past it in further frames. Either
// is also what an answer HTTP/2 cannot decode gets: the server's answer is
// at fault all the same.
func http2HeadersRefused(err error) bool {
	text := err.Error()
	return strings.HasSuffix(text, "connection error: COMPRESSION_ERROR") ||
		strings.HasSuffix(text, "connection error: PROTOCOL_ERROR")
}

func readError(ctx context.Context, provider string, status int, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return providers.Errorf(providers.ProviderUnavailable, "the login request to %s was cancelled", provider)
	}
	reason := networkReason(ctx, err)
	e := providers.Errorf(providers.ProviderUnavailable, "reading the answer from %s (HTTP %d) failed: %s", provider, status, reason)
	e.Status, e.Unavailable = status, unavailableReason(reason)
	return e
}

// networkReason names, in our own words, why a request failed: the cause
// for the operator's log, and for a TokenRequest only once the connection
// answered (readError) or as transportError allows.
func networkReason(ctx context.Context, err error) string {
	var (
		netErr  net.Error
		opErr   *net.OpError
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
	)
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsTimeout:
		return reasonLookupTimeout
	case errors.As(err, &opErr) && opErr.Op == "dial" && opErr.Timeout():
		return reasonDialTimeout
	case errors.As(err, &netErr) && netErr.Timeout() && strings.Contains(err.Error(), "TLS handshake timeout"):
		return reasonTLSTimeout
	case errors.Is(ctx.Err(), context.DeadlineExceeded),
		errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return reasonNoAnswer
	case errors.As(err, &dnsErr):
		return reasonUnresolved
	case errors.As(err, &certErr), errors.As(err, &unkAuth), errors.As(err, &hostErr), errors.As(err, &invErr):
		return reasonUntrusted
	case errors.As(err, &recErr):
		return "the server does not speak TLS (is the endpoint http rather than https?)"
	case errors.As(err, &alert):
		return "the TLS handshake failed (the server sent a TLS alert)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return reasonRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return reasonClosed
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return reasonHostUnreachable
	}
	return "the request failed"
}

// ClientError classifies a 4xx answer no provider-specific rule covered. A
// 401 or 403 is RequestBlocked (see Blocked): only the provider's own
// rejection, in the shape its documentation gives one, is
// AuthenticationFailed, and the provider says so before it calls this. Any
// other 4xx means the request was refused as we sent it: InvalidCredentials.
// credentialKeys names the keys to check, for example `email and password`.
func ClientError(provider string, reply *Reply, credentialKeys string) *providers.Error {
	if IsRejectionStatus(reply.StatusCode) {
		return Blocked(provider, reply)
	}
	e := providers.Errorf(providers.InvalidCredentials,
		"%s refused the login request (HTTP %d): check the endpoint, and %s in the credentials Secret", provider, reply.StatusCode, credentialKeys)
	e.Status = reply.StatusCode
	return e
}

// IsRejectionStatus reports whether status is 401 or 403, the statuses of
// a refused login: the provider's rejection of the credentials when the
// answer is in its documented shape, else RequestBlocked.
func IsRejectionStatus(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusForbidden
}

// Blocked is the RequestBlocked error of a 401 or 403 answer that is not in
// the provider's documented shape: an HTML page, an empty body, or another
// document. Something in front of the provider (a web application firewall,
// a proxy) refused the request; the credentials were not judged, so this is
// never a step toward the lockout. The message names the status and the
// answer's media type, never its body.
func Blocked(provider string, reply *Reply) *providers.Error {
	e := providers.Errorf(providers.RequestBlocked,
		"HTTP %d with %s: something in front of the provider refused the request; the credentials were not judged "+
			"(check that spec.endpoint is %s, and that no firewall or proxy on the way refuses the operator's requests)",
		reply.StatusCode, answerKind(reply), provider)
	e.Status = reply.StatusCode
	return e
}

// maxMediaTypeLen bounds the media type a message quotes.
const maxMediaTypeLen = 64

// answerKind names what an answer was, for a message: "an empty answer",
// "a text/html answer", "an answer without a Content-Type", or "an answer
// of an unrecognised type". The server writes Content-Type, so only its
// media type is quoted, and only when it is a short type/subtype of
// [a-z0-9.+-] (as servers write them: in lower case).
func answerKind(reply *Reply) string {
	if len(bytes.TrimSpace(reply.Body)) == 0 {
		return "an empty answer"
	}
	value := reply.Header.Get("Content-Type")
	if strings.TrimSpace(value) == "" {
		return "an answer without a Content-Type"
	}
	mediaType, _, _ := strings.Cut(value, ";")
	mediaType = strings.TrimSpace(mediaType)
	if !isMediaType(mediaType) {
		return "an answer of an unrecognised type"
	}
	article := "a"
	if strings.ContainsRune("aeiou", rune(mediaType[0])) {
		article = "an"
	}
	return article + " " + mediaType + " answer"
}

// isMediaType reports whether s is type/subtype, each non-empty, of
// lower-case ASCII letters, digits and .+- only, at most maxMediaTypeLen in
// all.
func isMediaType(s string) bool {
	if len(s) > maxMediaTypeLen {
		return false
	}
	kind, subtype, ok := strings.Cut(s, "/")
	if !ok || kind == "" || subtype == "" {
		return false
	}
	for _, part := range []string{kind, subtype} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '+' || c == '-') {
				return false
			}
		}
	}
	return true
}
