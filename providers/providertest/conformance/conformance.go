// Package conformance is the suite every provider's tests run: the answers
// no provider documents (5xx, 429, timeouts, resets, HTML pages, 401 and 403
// from something in front of the provider, oversized bodies and headers,
// JSON past the bounds, redirects, refused dials, malformed endpoints) that
// every provider must classify alike, the rule that only a provider's
// documented rejection counts toward the lockout (RunRejections), the
// sentinel values that must never surface in an error message, and
// assertions on errors. A new provider's tests call RunUndocumented with its
// constructor and a sentinel set of credentials, and RunRejections with its
// documented rejections.
package conformance

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/login"
)

// Sentinels stand for secrets: credential values, tokens and response
// text. No error message may contain one.
const (
	SentinelPassword = "SENTINEL-PASSWORD-1234"
	SentinelSecret   = "SENTINEL-SECRET-5678"
	SentinelUser     = "SENTINEL-USER-9012"
	SentinelToken    = "SENTINEL-TOKEN-3456"
	SentinelBody     = "SENTINEL-BODY-7890"
)

// Sentinels lists every sentinel.
var Sentinels = []string{SentinelPassword, SentinelSecret, SentinelUser, SentinelToken, SentinelBody}

// Now is the fixed local clock tests inject.
var Now = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// Clock returns Now.
func Clock() time.Time { return Now }

// ManualClock is a clock that moves only when told, so a test can make
// time pass while a login waits for its answer. It is safe for concurrent
// use.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock showing start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// RequireError fails t unless err is a *providers.Error of kind whose
// message holds none of the Sentinels, and returns it.
func RequireError(t testing.TB, err error, kind providers.ErrorKind) *providers.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", kind)
	}
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("got %T %q, want a *providers.Error", err, err)
	}
	if pe.Kind != kind {
		t.Errorf("kind = %s (%q), want %s", pe.Kind, pe.Message, kind)
	}
	RequireNoSentinel(t, pe.Message)
	return pe
}

// RequireNoSentinel fails t if message holds a sentinel.
func RequireNoSentinel(t testing.TB, message string) {
	t.Helper()
	for _, s := range Sentinels {
		if strings.Contains(message, s) {
			t.Errorf("message %q leaks sentinel %s", message, s)
		}
	}
}

// Case is an answer and what a login must make of it.
type Case struct {
	Name    string
	Handler http.HandlerFunc
	Kind    providers.ErrorKind
	// RetryAfter is the hint the error must carry.
	RetryAfter time.Duration
	// Contains is part of the message.
	Contains string
	// Unavailable is what the error's Unavailable must say: the host could
	// not serve the request at all (502, 503, 504, a connection reset or
	// cut short), which the operator counts toward marking it down.
	Unavailable bool
}

// sentinelJSON is an error body full of sentinels.
const sentinelJSON = `{"error": "` + SentinelBody + `", "message": "` + SentinelPassword + `", "token": "` + SentinelToken + `"}`

func answer(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// BlockedMessage is how a RequestBlocked message starts for status and
// kind, the answer named by its media type ("a text/html answer") or as
// "an empty answer".
func BlockedMessage(status int, kind string) string {
	return "HTTP " + strconv.Itoa(status) + " with " + kind +
		": something in front of the provider refused the request; the credentials were not judged"
}

// UndocumentedCases are the answers no provider documents, classified
// alike by all. successStatus is the provider's success status.
func UndocumentedCases(successStatus int) []Case {
	html := map[string]string{"Content-Type": "text/html"}
	jsonType := map[string]string{"Content-Type": "application/json"}
	htmlPage := "<!DOCTYPE html><html><body><h1>403 Forbidden</h1>" + SentinelBody + "</body></html>"
	return []Case{
		// A web application firewall or a proxy in front of the provider.
		{Name: "401 HTML", Handler: answer(401, html, htmlPage), Kind: providers.RequestBlocked, Contains: BlockedMessage(401, "a text/html answer")},
		{Name: "403 HTML", Handler: answer(403, map[string]string{"Content-Type": "text/html; charset=" + SentinelBody}, htmlPage),
			Kind: providers.RequestBlocked, Contains: BlockedMessage(403, "a text/html answer")},
		{Name: "401 empty", Handler: answer(401, nil, ""), Kind: providers.RequestBlocked, Contains: BlockedMessage(401, "an empty answer")},
		{Name: "403 empty", Handler: answer(403, html, ""), Kind: providers.RequestBlocked, Contains: BlockedMessage(403, "an empty answer")},
		{Name: "403 hostile Content-Type", Handler: answer(403, map[string]string{"Content-Type": SentinelBody + "/" + SentinelToken}, SentinelBody),
			Kind: providers.RequestBlocked, Contains: BlockedMessage(403, "an answer of an unrecognised type")},
		// Bounds on the answer, before any provider reads it.
		{Name: "headers over 64 KiB", Handler: answer(successStatus, map[string]string{"X-Token": strings.Repeat("t", 9<<20)}, ""),
			Kind: providers.InvalidResponse, Contains: "response headers larger than 64 KiB"},
		{Name: "2xx JSON nested 33 levels", Handler: answer(successStatus, jsonType, strings.Repeat("[", 33)+strings.Repeat("]", 33)),
			Kind: providers.InvalidResponse, Contains: "nested deeper than 32 levels"},
		{Name: "401 JSON nested 33 levels", Handler: answer(401, jsonType, `{"error":`+strings.Repeat("[", 33)+strings.Repeat("]", 33)+`}`),
			Kind: providers.InvalidResponse, Contains: "nested deeper than 32 levels"},
		{Name: "2xx JSON of 10,001 values", Handler: answer(successStatus, jsonType, "["+strings.TrimSuffix(strings.Repeat("{},", 10_000), ",")+"]"),
			Kind: providers.InvalidResponse, Contains: "more than 10,000 values"},
		{Name: "500", Handler: answer(500, jsonType, sentinelJSON), Kind: providers.ProviderUnavailable, Contains: "HTTP 500"},
		{Name: "502 HTML", Handler: answer(502, html, "<html>"+SentinelBody+"</html>"), Kind: providers.ProviderUnavailable, Contains: "HTTP 502", Unavailable: true},
		{Name: "503 Retry-After seconds", Handler: answer(503, map[string]string{"Retry-After": "120"}, sentinelJSON),
			Kind: providers.ProviderUnavailable, RetryAfter: 2 * time.Minute, Contains: "HTTP 503", Unavailable: true},
		{Name: "503 Retry-After date", Handler: answer(503, map[string]string{"Retry-After": Now.Add(90 * time.Second).Format(http.TimeFormat)}, ""),
			Kind: providers.ProviderUnavailable, RetryAfter: 90 * time.Second, Unavailable: true},
		{Name: "429 without Retry-After", Handler: answer(429, jsonType, sentinelJSON), Kind: providers.ProviderUnavailable, Contains: "HTTP 429"},
		{Name: "429 Retry-After", Handler: answer(429, map[string]string{"Retry-After": "30"}, sentinelJSON),
			Kind: providers.ProviderUnavailable, RetryAfter: 30 * time.Second},
		{Name: "429 malformed Retry-After", Handler: answer(429, map[string]string{"Retry-After": SentinelBody}, ""), Kind: providers.ProviderUnavailable},
		{Name: "408", Handler: answer(408, nil, SentinelBody), Kind: providers.ProviderUnavailable, Contains: "HTTP 408"},
		{Name: "2xx HTML page", Handler: answer(successStatus, html, "<!DOCTYPE html><html><body>"+SentinelBody+"</body></html>"),
			Kind: providers.InvalidResponse, Contains: "HTTP " + strconv.Itoa(successStatus)},
		{Name: "2xx empty body", Handler: answer(successStatus, nil, ""), Kind: providers.InvalidResponse},
		{Name: "2xx blank body", Handler: answer(successStatus, nil, " \n"), Kind: providers.InvalidResponse},
		{Name: "2xx JSON null", Handler: answer(successStatus, jsonType, "null"), Kind: providers.InvalidResponse},
		{Name: "2xx JSON array", Handler: answer(successStatus, jsonType, `["`+SentinelToken+`"]`), Kind: providers.InvalidResponse},
		{Name: "2xx body over 1 MiB", Handler: answer(successStatus, jsonType, `"`+strings.Repeat("a", login.MaxResponseBytes)+`"`),
			Kind: providers.InvalidResponse, Contains: "response body larger than 1 MiB"},
		{Name: "302 redirect", Handler: answer(302, map[string]string{"Location": "/elsewhere?token=" + SentinelToken}, SentinelBody),
			Kind: providers.InvalidResponse, Contains: "redirect"},
		{Name: "308 redirect", Handler: answer(308, map[string]string{"Location": "https://elsewhere.example/"}, ""),
			Kind: providers.InvalidResponse, Contains: "redirect"},
		{Name: "status 600", Handler: answer(600, nil, SentinelBody), Kind: providers.InvalidResponse, Contains: "600"},
		{Name: "504", Handler: answer(504, nil, SentinelBody), Kind: providers.ProviderUnavailable, Contains: "HTTP 504", Unavailable: true},
		{Name: "connection reset", Handler: Reset, Kind: providers.ProviderUnavailable, Unavailable: true},
		{Name: "closed without answer", Handler: func(w http.ResponseWriter, _ *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}, Kind: providers.ProviderUnavailable, Unavailable: true},
		{Name: "truncated body", Handler: func(w http.ResponseWriter, _ *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"token\": \"" + SentinelToken)
			_ = buf.Flush()
			_ = conn.Close()
		}, Kind: providers.ProviderUnavailable, Contains: "closed before a complete answer", Unavailable: true},
		{Name: "malformed status line", Handler: func(w http.ResponseWriter, _ *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			_, _ = buf.WriteString("HTTP/1.1 " + SentinelBody + "\r\n\r\n")
			_ = buf.Flush()
			_ = conn.Close()
		}, Kind: providers.ProviderUnavailable},
	}
}

// Reset answers with a TCP reset.
func Reset(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// NewProvider builds the provider under test.
type NewProvider func(providers.Options) providers.Provider

// RunUndocumented logs in with creds against each of UndocumentedCases, then
// checks a client timeout, cancellation of the context, a refused
// connection, a DialControl policy's refusal and malformed endpoints.
func RunUndocumented(t *testing.T, newProvider NewProvider, successStatus int, creds providers.Credentials) {
	for _, c := range UndocumentedCases(successStatus) {
		t.Run(c.Name, func(t *testing.T) {
			var redirected atomic.Bool
			mux := http.NewServeMux()
			mux.HandleFunc("/elsewhere", func(http.ResponseWriter, *http.Request) { redirected.Store(true) })
			mux.HandleFunc("/", c.Handler)
			srv := httptest.NewServer(mux)
			defer srv.Close()

			p := newProvider(providers.Options{Now: Clock})
			_, err := p.Login(context.Background(), srv.URL, creds)
			pe := RequireError(t, err, c.Kind)
			if pe.RetryAfter != c.RetryAfter {
				t.Errorf("RetryAfter = %s, want %s", pe.RetryAfter, c.RetryAfter)
			}
			if !strings.Contains(pe.Message, c.Contains) {
				t.Errorf("message %q does not mention %q", pe.Message, c.Contains)
			}
			if pe.Unavailable != c.Unavailable {
				t.Errorf("Unavailable = %v, want %v", pe.Unavailable, c.Unavailable)
			}
			if redirected.Load() {
				t.Error("the redirect was followed")
			}
		})
	}

	t.Run("client timeout", func(t *testing.T) {
		srv := httptest.NewServer(Hang())
		defer srv.Close()
		p := newProvider(providers.Options{Timeout: 200 * time.Millisecond, Now: Clock})
		start := time.Now()
		_, err := p.Login(context.Background(), srv.URL, creds)
		pe := RequireError(t, err, providers.ProviderUnavailable)
		if !strings.Contains(pe.Message, "time limit") {
			t.Errorf("message %q does not say it timed out", pe.Message)
		}
		if !pe.Unavailable {
			t.Error("a timeout is not Unavailable")
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("login took %s despite a 200ms timeout", elapsed)
		}
	})

	t.Run("context deadline", func(t *testing.T) {
		srv := httptest.NewServer(Hang())
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := newProvider(providers.Options{Now: Clock}).Login(ctx, srv.URL, creds)
		if pe := RequireError(t, err, providers.ProviderUnavailable); !pe.Unavailable {
			t.Error("a deadline passed is not Unavailable")
		}
	})

	t.Run("context cancellation aborts the request", func(t *testing.T) {
		aborted, started := make(chan struct{}), make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
			close(started)
			select {
			case <-r.Context().Done():
				close(aborted)
			case <-time.After(10 * time.Second):
			}
		}))
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		// Cancel once the server holds the request, so a loaded machine
		// cannot cancel before the request was sent.
		go func() {
			select {
			case <-started:
			case <-time.After(10 * time.Second):
			}
			cancel()
		}()
		_, err := newProvider(providers.Options{Now: Clock}).Login(ctx, srv.URL, creds)
		pe := RequireError(t, err, providers.ProviderUnavailable)
		if !strings.Contains(pe.Message, "cancelled") {
			t.Errorf("message %q does not say it was cancelled", pe.Message)
		}
		select {
		case <-aborted:
		case <-time.After(5 * time.Second):
			t.Error("the server never saw the request aborted")
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := newProvider(providers.Options{Now: Clock}).Login(context.Background(), url, creds)
		if pe := RequireError(t, err, providers.ProviderUnavailable); !pe.Unavailable {
			t.Error("a refused connection is not Unavailable")
		}
	})

	t.Run("dial refused by policy", func(t *testing.T) {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
		defer srv.Close()
		_, err := newProvider(providers.Options{
			DialControl: func(network, address string, _ syscall.RawConn) error {
				return providers.Errorf(providers.EndpointNotAllowed, "address %s is not allowed", address)
			},
			Now: Clock,
		}).Login(context.Background(), srv.URL, creds)
		RequireError(t, err, providers.EndpointNotAllowed)
		if hits.Load() != 0 {
			t.Error("the request reached the server")
		}
	})

	for _, endpoint := range []string{"ftp://example.com", "example.com/path", "https://user:" + SentinelPassword + "@example.com", "http://%zz", "https://"} {
		t.Run("endpoint "+endpoint, func(t *testing.T) {
			_, err := newProvider(providers.Options{Now: Clock}).Login(context.Background(), endpoint, creds)
			RequireError(t, err, providers.EndpointNotAllowed)
		})
	}
}

// Hang answers only when the request is abandoned.
func Hang() http.Handler {
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		// The server notices a closed connection only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
}
