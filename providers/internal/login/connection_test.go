package login

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
)

// The connection tests: what a TokenRequest is told when a connection
// fails (transportError), and the URL host the dial control is given.

// sentinelGreeting is what the plain-TCP listener says; no message or
// detail may quote it.
const sentinelGreeting = "SSH-2.0-SENTINEL-9c1f secret banner"

// listen accepts on 127.0.0.1 and hands each connection to serve.
func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// closedPort returns an address on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestConnectionFailuresReadAlike: a closed port, a listener that resets,
// one that closes at once, one that speaks no TLS, one that never
// answers the handshake, a TLS server that will not agree on a version
// and an HTTPS server that never answers are told to the TokenRequest in
// one message, quoting nothing the server sent; the cause is in Detail,
// for the operator's log. A certificate that cannot be verified keeps its
// own message, and so does a name that does not resolve.
func TestConnectionFailuresReadAlike(t *testing.T) {
	tlsOld := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsOld.TLS = &tls.Config{MaxVersion: tls.VersionTLS11}
	tlsOld.StartTLS()
	t.Cleanup(tlsOld.Close)
	hangs := httptest.NewTLSServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(hangs.Close)
	trusting := func(srv *httptest.Server) *http.Client {
		c := newHTTPClient(providers.Options{Timeout: 500 * time.Millisecond}, nil)
		c.Transport.(*userAgentTransport).base.(*http.Transport).TLSClientConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		return c
	}

	cases := []struct {
		name   string
		host   string
		client *http.Client
		detail string
		// unavailable: the host refused, reset, cut short or never
		// answered (providers.Error.Unavailable); a server that speaks no
		// TLS, or not the version offered, is a wrong endpoint.
		unavailable bool
	}{
		{name: "closed port", host: closedPort(t), detail: "connection refused", unavailable: true},
		{name: "reset", host: listen(t, func(c net.Conn) {
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}), unavailable: true},
		{name: "closed at once", host: listen(t, func(c net.Conn) { c.Close() }), unavailable: true},
		{name: "plain TCP", host: listen(t, func(c net.Conn) {
			defer c.Close()
			_, _ = c.Write([]byte(sentinelGreeting + "\r\n"))
			_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<10))
		}), detail: "does not speak TLS"},
		{name: "no handshake", host: listen(t, func(c net.Conn) {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(io.Discard, c)
		}), detail: "time", unavailable: true},
		{name: "TLS version", host: strings.TrimPrefix(tlsOld.URL, "https://"), client: trusting(tlsOld)},
		{name: "no answer", host: strings.TrimPrefix(hangs.URL, "https://"), client: trusting(hangs), detail: "time limit", unavailable: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client := c.client
			if client == nil {
				client = newHTTPClient(providers.Options{Timeout: 500 * time.Millisecond}, nil)
			}
			_, err := Send(context.Background(), client, time.Now, Request{Provider: "Test", Method: http.MethodPost, URL: "https://" + c.host + "/login"})
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Kind != providers.ProviderUnavailable {
				t.Fatalf("err = %v, want ProviderUnavailable", err)
			}
			if want := "could not reach Test at " + c.host + ": " + connectionFailed; pe.Message != want {
				t.Errorf("message %q\nwant      %q", pe.Message, want)
			}
			if pe.Detail == "" || !strings.Contains(pe.Detail, c.detail) {
				t.Errorf("detail %q, want one saying %q", pe.Detail, c.detail)
			}
			if pe.Unavailable != c.unavailable || pe.Status != 0 {
				t.Errorf("Unavailable %v, Status %d; want %v, 0 (detail %q)", pe.Unavailable, pe.Status, c.unavailable, pe.Detail)
			}
			if strings.Contains(pe.Message+pe.Detail, "SENTINEL") {
				t.Errorf("the server's words leaked: %q / %q", pe.Message, pe.Detail)
			}
		})
	}

	t.Run("certificate", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		defer srv.Close()
		host := strings.TrimPrefix(srv.URL, "https://")
		_, err := Send(context.Background(), newHTTPClient(providers.Options{Timeout: 2 * time.Second}, nil), time.Now,
			Request{Provider: "Test", Method: http.MethodPost, URL: srv.URL})
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Message != "could not reach Test at "+host+": "+reasonUntrusted {
			t.Errorf("err = %v, want the certificate's own message", err)
		}
	})
}

// TestTransportErrorCauses: transportError on the errors net/http returns,
// including those no local listener makes reliably (a filtered port, a
// name that does not resolve): one message but for DNS and certificates,
// the cause in Detail.
func TestTransportErrorCauses(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{}}
	expired, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		err     error
		message string
		detail  string
		// unavailable: providers.Error.Unavailable, the host could not
		// serve the request at all.
		unavailable bool
	}{
		{name: "filtered: the connection attempt timed out", err: wrapped(timeout), message: connectionFailed, detail: "the connection attempt timed out", unavailable: true},
		{name: "refused", err: wrapped(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), message: connectionFailed, detail: "connection refused", unavailable: true},
		{name: "unreachable", err: wrapped(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.EHOSTUNREACH}), message: connectionFailed, detail: "unreachable", unavailable: true},
		{name: "reset", err: wrapped(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), message: connectionFailed, detail: "closed before a complete answer", unavailable: true},
		{name: "EOF", err: wrapped(io.EOF), message: connectionFailed, detail: "closed before a complete answer", unavailable: true},
		{name: "not TLS", err: wrapped(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), message: connectionFailed, detail: "does not speak TLS"},
		{name: "TLS alert", err: wrapped(&net.OpError{Op: "remote error", Err: tls.AlertError(40)}), message: connectionFailed, detail: "TLS alert"},
		{name: "deadline", ctx: expired, err: wrapped(context.DeadlineExceeded), message: connectionFailed, detail: "no answer within the time limit", unavailable: true},
		{name: "something else", err: wrapped(errors.New("malformed HTTP response \"SENTINEL\"")), message: connectionFailed, detail: "the request failed"},
		{name: "DNS", err: wrapped(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}}), message: reasonUnresolved, detail: reasonUnresolved},
		{name: "DNS timeout", err: wrapped(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "timeout", Name: "x.invalid", IsTimeout: true}}), message: connectionFailed, detail: "lookup timed out", unavailable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var pe *providers.Error
			if !errors.As(transportError(ctx, "Test", "h.example:443", tt.err), &pe) || pe.Kind != providers.ProviderUnavailable {
				t.Fatalf("not a ProviderUnavailable *providers.Error: %v", pe)
			}
			if want := "could not reach Test at h.example:443: " + tt.message; pe.Message != want {
				t.Errorf("message %q\nwant      %q", pe.Message, want)
			}
			if !strings.Contains(pe.Detail, tt.detail) {
				t.Errorf("detail %q, want one saying %q", pe.Detail, tt.detail)
			}
			if pe.Unavailable != tt.unavailable {
				t.Errorf("Unavailable = %v, want %v", pe.Unavailable, tt.unavailable)
			}
			if strings.Contains(pe.Message+pe.Detail, "SENTINEL") {
				t.Errorf("Go's words leaked: %q / %q", pe.Message, pe.Detail)
			}
		})
	}

	// A policy's refusal comes back as it is, and a cancellation says so.
	refusal := providers.Errorf(providers.EndpointNotAllowed, "refused by the policy")
	if err := transportError(context.Background(), "Test", "h", wrapped(&net.OpError{Op: "dial", Err: refusal})); err != refusal {
		t.Errorf("policy refusal became %v", err)
	}
	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if err := transportError(cancelled, "Test", "h", wrapped(context.Canceled)); !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("cancellation: %v", err)
	}
}

// wrapped is err as http.Client returns it.
func wrapped(err error) error { return &urlError{err} }

type urlError struct{ err error }

func (e *urlError) Error() string { return "Post \"https://h.example/login\": " + e.err.Error() }
func (e *urlError) Unwrap() error { return e.err }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// TestDialHostInContext: the client names each request's URL host in the
// context its connections are dialed with, so DialControlContext can
// judge a resolved address by the host it was resolved from. The transport
// pools connections by that host: a second request to the same host reuses
// the connection (no dial), and a request to another host for the same
// address dials anew, with its own host.
func TestDialHostInContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]

	var (
		mu    sync.Mutex
		dials []string
	)
	c := newHTTPClient(providers.Options{
		DialControlContext: func(ctx context.Context, network, address string, _ syscall.RawConn) error {
			mu.Lock()
			defer mu.Unlock()
			if strings.HasPrefix(address, "127.0.0.1:") { // localhost may also resolve to ::1
				dials = append(dials, providers.DialHost(ctx))
			}
			return nil
		},
	}, nil)
	get := func(url string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get("http://127.0.0.1:" + port + "/a")
	get("http://127.0.0.1:" + port + "/b")
	get("http://localhost:" + port + "/c")
	get("http://localhost:" + port + "/d")

	mu.Lock()
	defer mu.Unlock()
	want := []string{"127.0.0.1:" + port, "localhost:" + port}
	if strings.Join(dials, " ") != strings.Join(want, " ") {
		t.Errorf("dials to 127.0.0.1 made for hosts %q, want %q", dials, want)
	}
}

// TestDialControlContextOverDialControl: with both set, the context's runs
// (as net.Dialer's ControlContext does), and neither judges the proxy.
func TestDialControlContextOverDialControl(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	var plain, withCtx int
	c := newHTTPClient(providers.Options{
		DialControl:        func(string, string, syscall.RawConn) error { plain++; return nil },
		DialControlContext: func(context.Context, string, string, syscall.RawConn) error { withCtx++; return nil },
	}, nil)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if plain != 0 || withCtx != 1 {
		t.Errorf("DialControl ran %d times, DialControlContext %d; want 0 and 1", plain, withCtx)
	}
}
