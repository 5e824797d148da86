package login

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokensync/tokensync/internal/cabundle/cabundletest"
	"github.com/tokensync/tokensync/providers"
)

func TestNewHTTPClientDefaults(t *testing.T) {
	c := NewHTTPClient(providers.Options{})
	if c.Timeout != DefaultTimeout {
		t.Errorf("Timeout = %s, want %s", c.Timeout, DefaultTimeout)
	}
	if err := c.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("CheckRedirect = %v, want http.ErrUseLastResponse", err)
	}
	ua, ok := c.Transport.(*userAgentTransport)
	if !ok {
		t.Fatalf("Transport is %T", c.Transport)
	}
	if ua.userAgent != DefaultUserAgent {
		t.Errorf("User-Agent = %q", ua.userAgent)
	}
	tr := ua.base.(*http.Transport)
	if tr.Proxy == nil {
		t.Error("no proxy from the environment")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("TLS verification is not on")
	}
	if tr.TLSHandshakeTimeout == 0 || tr.ResponseHeaderTimeout == 0 || tr.IdleConnTimeout == 0 {
		t.Error("transport timeouts are missing")
	}

	c = NewHTTPClient(providers.Options{Timeout: time.Second, UserAgent: "x/1"})
	if c.Timeout != time.Second || c.Transport.(*userAgentTransport).userAgent != "x/1" {
		t.Errorf("options ignored: %+v", c)
	}
}

func TestNewHTTPClientBehaviour(t *testing.T) {
	var gotUA string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUA = r.Header.Get("User-Agent")
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/target", http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()

	var dialed atomic.Value
	c := NewHTTPClient(providers.Options{
		UserAgent: "tokensync-test",
		DialControl: func(network, address string, _ syscall.RawConn) error {
			dialed.Store(network + " " + address)
			return nil
		},
	})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/redirect", nil)
	req.Header.Set("User-Agent", "overridden")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status = %d: the redirect was followed", resp.StatusCode)
	}
	if gotUA != "tokensync-test" {
		t.Errorf("User-Agent = %q", gotUA)
	}
	if req.Header.Get("User-Agent") != "overridden" {
		t.Error("the caller's request was modified")
	}
	if got, _ := dialed.Load().(string); !strings.HasPrefix(got, "tcp4 127.0.0.1:") {
		t.Errorf("DialControl saw %q", got)
	}
}

func TestNewHTTPClientVerifiesTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := SendJSON(context.Background(), NewHTTPClient(providers.Options{}), time.Now, JSONRequest{
		Provider: "Test", Method: http.MethodPost, URL: srv.URL,
	})
	if providers.KindOf(err) != providers.ProviderUnavailable || !strings.Contains(err.Error(), "certificate could not be verified") {
		t.Errorf("err = %v, want a certificate verification failure", err)
	}
}

func TestHTTPClient(t *testing.T) {
	if c := HTTPClient(providers.Options{}); c == nil || c.Timeout != DefaultTimeout {
		t.Errorf("HTTPClient of zero Options = %+v, want a NewHTTPClient", c)
	}
	given := &http.Client{}
	if c := HTTPClient(providers.Options{HTTPClient: given, Timeout: time.Second}); c != given {
		t.Error("the given client was replaced")
	}
}

// TestHTTPClientChecksEveryURL: with CheckURL, every request the client
// sends is asked about first, with the provider's name; a refused one is
// never sent (the server counts requests) and fails with the policy's
// *providers.Error, whichever client and path sent it.
func TestHTTPClientChecksEveryURL(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()

	var asked []string
	check := func(provider string, u *url.URL) error {
		asked = append(asked, provider+" "+u.String())
		if strings.Contains(u.Path, "admin") {
			return providers.Errorf(providers.EndpointNotAllowed, "endpoint %s is not allowed", u)
		}
		if strings.Contains(u.Path, "other") {
			return errors.New("not a provider error")
		}
		return nil
	}
	for _, given := range []*http.Client{nil, {}, srv.Client()} {
		asked = nil
		requests.Store(0)
		c := HTTPClient(providers.Options{HTTPClient: given, CheckURL: check, Name: "http"})
		if given != nil && c == given {
			t.Fatal("the given client was not wrapped")
		}
		if _, err := Send(context.Background(), c, time.Now, Request{Provider: "Test", Method: http.MethodPost, URL: srv.URL + "/tenant-a/login", Body: []byte("x")}); err != nil {
			t.Fatalf("allowed request: %v", err)
		}
		_, err := Send(context.Background(), c, time.Now, Request{Provider: "Test", Method: http.MethodPost, URL: srv.URL + "/admin/keys", Body: []byte("secret")})
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Kind != providers.EndpointNotAllowed || !strings.Contains(pe.Message, "/admin/keys is not allowed") {
			t.Errorf("refused request: %v, want the policy's EndpointNotAllowed", err)
		}
		// The same through a library that sends the request itself.
		lib := &http.Client{Transport: &Transport{Provider: "Test", Base: c.Transport}}
		if _, err := lib.Post(srv.URL+"/admin/x", "text/plain", strings.NewReader("secret")); providers.KindOf(err) != providers.EndpointNotAllowed {
			t.Errorf("refused request through Transport: %v, want EndpointNotAllowed", err)
		}
		if _, err := Send(context.Background(), c, time.Now, Request{Provider: "Test", Method: http.MethodGet, URL: srv.URL + "/other"}); providers.KindOf(err) != providers.EndpointNotAllowed {
			t.Errorf("a plain error from CheckURL: %v, want EndpointNotAllowed", err)
		}
		if n := requests.Load(); n != 1 {
			t.Errorf("the server saw %d requests, want 1: refused requests must not be sent", n)
		}
		want := []string{"http " + srv.URL + "/tenant-a/login", "http " + srv.URL + "/admin/keys", "http " + srv.URL + "/admin/x", "http " + srv.URL + "/other"}
		if strings.Join(asked, "\n") != strings.Join(want, "\n") {
			t.Errorf("CheckURL asked about\n%s\nwant\n%s", strings.Join(asked, "\n"), strings.Join(want, "\n"))
		}
	}
	if c := HTTPClient(providers.Options{}); c.Transport == nil {
		t.Error("no transport")
	} else if _, wrapped := c.Transport.(*checkedTransport); wrapped {
		t.Error("a client without CheckURL was wrapped")
	}
}

// TestNewHTTPClientExemptsTheProxy: through a proxy the address dialed is
// the proxy's, chosen by the operator; DialControl does not judge it, and
// still judges direct connections.
func TestNewHTTPClientExemptsTheProxy(t *testing.T) {
	var proxied atomic.Int32
	proxySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		if r.URL.Host != "login.example.test" {
			t.Errorf("the proxy was asked for %q", r.URL)
		}
		w.Write([]byte(`{}`))
	}))
	defer proxySrv.Close()
	proxyURL, _ := url.Parse(proxySrv.URL)

	var dialed []string
	refuseAll := func(_, address string, _ syscall.RawConn) error {
		dialed = append(dialed, address)
		return providers.Errorf(providers.EndpointNotAllowed, "connection to %s refused", address)
	}
	viaProxy := func(r *http.Request) (*url.URL, error) {
		if r.URL.Host == "login.example.test" {
			return proxyURL, nil
		}
		return nil, nil // NO_PROXY
	}
	c := newHTTPClient(providers.Options{DialControl: refuseAll}, viaProxy)
	reply, err := Send(context.Background(), c, time.Now, Request{Provider: "Test", Method: http.MethodGet, URL: "http://login.example.test/login"})
	if err != nil || reply.StatusCode != http.StatusOK || proxied.Load() != 1 {
		t.Fatalf("through the proxy: %v (proxied %d)", err, proxied.Load())
	}
	if len(dialed) != 0 {
		t.Errorf("DialControl judged the proxy's address: %v", dialed)
	}
	// Not through the proxy: judged.
	if _, err := Send(context.Background(), c, time.Now, Request{Provider: "Test", Method: http.MethodGet, URL: "http://127.0.0.1:1/login"}); providers.KindOf(err) != providers.EndpointNotAllowed {
		t.Errorf("direct: %v, want EndpointNotAllowed from DialControl", err)
	}
	if len(dialed) != 1 || dialed[0] != "127.0.0.1:1" {
		t.Errorf("DialControl saw %v, want [127.0.0.1:1]", dialed)
	}
}

func TestProxyAddr(t *testing.T) {
	for raw, want := range map[string]string{
		"http://proxy.example:3128":  "proxy.example:3128",
		"http://PROXY.example":       "proxy.example:80",
		"https://proxy.example":      "proxy.example:443",
		"socks5://127.0.0.1":         "127.0.0.1:1080",
		"http://[::1]:3128":          "[::1]:3128",
		"http://user:pw@proxy:8080/": "proxy:8080",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := proxyAddr(u); got != want {
			t.Errorf("proxyAddr(%s) = %q, want %q", raw, got, want)
		}
	}
}

func TestClock(t *testing.T) {
	if Clock(providers.Options{})().IsZero() {
		t.Error("no default clock")
	}
	now := func() time.Time { return time.Time{} }
	if !Clock(providers.Options{Now: now})().IsZero() {
		t.Error("the given clock was replaced")
	}
}

// TestResponseHeaderLimit: the login client reads at most
// MaxResponseHeaderBytes of response headers, over HTTP/1 and over HTTP/2
// (the transport hands the limit to the bundled HTTP/2 transport, which
// adds a little for its per-field overhead), and an answer over it is an
// InvalidResponse that says so, through Send and through Transport alike.
func TestResponseHeaderLimit(t *testing.T) {
	const h2Slack = 1 << 10 // HTTP/2 counts 32 bytes per field more, and pads the limit by 320
	for _, tc := range []struct {
		name          string
		http2         bool
		headers, each int // that many headers of each bytes
		ok            bool
	}{
		{"HTTP/1 under the limit", false, 1, MaxResponseHeaderBytes - 4<<10, true},
		{"HTTP/1 one header of 9 MiB", false, 1, 9 << 20, false},
		{"HTTP/1 one header just over the limit", false, 1, MaxResponseHeaderBytes, false},
		{"HTTP/1 many headers over the limit", false, 100, 1000, false},
		{"HTTP/2 under the limit", true, 1, MaxResponseHeaderBytes - 4<<10, true},
		{"HTTP/2 many headers under the limit", true, 60, 1000, true},
		{"HTTP/2 one header of 9 MiB", true, 1, 9 << 20, false},
		{"HTTP/2 one header just over the limit", true, 1, MaxResponseHeaderBytes + h2Slack, false},
		{"HTTP/2 many headers over the limit", true, 100, 1000, false},
		{"HTTP/2 9 MiB of headers", true, 9 << 10, 1 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value := strings.Repeat("h", tc.each)
			var proto atomic.Int32
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				proto.Store(int32(r.ProtoMajor))
				for i := range tc.headers {
					w.Header().Set("X-Token-"+strconv.Itoa(i), value)
				}
				_, _ = w.Write([]byte(`{"ok": true}`))
			}))
			srv.EnableHTTP2 = tc.http2
			srv.StartTLS()
			defer srv.Close()
			c := NewHTTPClient(providers.Options{Timeout: 20 * time.Second})
			tr := c.Transport.(*userAgentTransport).base.(*http.Transport)
			tr.TLSClientConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			defer tr.CloseIdleConnections()

			for _, via := range []string{"Send", "Transport"} {
				var err error
				if via == "Send" {
					_, err = Send(context.Background(), c, time.Now, Request{Provider: "Test", Method: http.MethodPost, URL: srv.URL})
				} else {
					lc := &http.Client{Transport: &Transport{Provider: "Test", Base: c.Transport}, CheckRedirect: NoRedirects}
					var resp *http.Response
					if resp, err = lc.Get(srv.URL); err == nil {
						resp.Body.Close()
					}
				}
				wantProto := int32(1)
				if tc.http2 {
					wantProto = 2
				}
				if got := proto.Load(); got != wantProto {
					t.Fatalf("%s: the request went over HTTP/%d, want HTTP/%d", via, got, wantProto)
				}
				if tc.ok {
					if err != nil {
						t.Errorf("%s: %v", via, err)
					}
					continue
				}
				var pe *providers.Error
				if !errors.As(err, &pe) || pe.Kind != providers.InvalidResponse || !strings.Contains(pe.Message, "response headers larger than 64 KiB") {
					t.Errorf("%s: err = %v, want an InvalidResponse naming the 64 KiB header limit", via, err)
				}
			}
		})
	}
}

// TestNewHTTPClientRootCAs: with RootCAs, servers are verified against the
// pool it returns for each request, directly (HTTP/2) and through a proxy
// (the TLS connection inside the tunnel is the transport's own): a server
// of a private CA is refused without it and trusted with it, and when the
// pool changes the next request verifies with the new one, on a connection
// of its own, with no client built anew.
func TestNewHTTPClientRootCAs(t *testing.T) {
	first, second, third := cabundletest.NewCA(t, "first"), cabundletest.NewCA(t, "second"), cabundletest.NewCA(t, "third")
	poolOf := func(ca *cabundletest.CA) *x509.CertPool {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.PEM)
		return pool
	}
	proxy, tunnels := startConnectProxy(t)
	for _, route := range []string{"direct", "through a proxy"} {
		t.Run(route, func(t *testing.T) {
			var proto atomic.Int32
			srv := cabundletest.StartServer(t, first, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				proto.Store(int32(r.ProtoMajor))
				w.Write([]byte(`{}`))
			}))
			viaProxy := func(*http.Request) (*url.URL, error) { return nil, nil }
			if route != "direct" {
				viaProxy = func(*http.Request) (*url.URL, error) { return proxy, nil }
			}
			tunnelsBefore := tunnels.Load()
			login := func(c *http.Client) error {
				_, err := Send(context.Background(), c, time.Now, Request{Provider: "Test", Method: http.MethodPost, URL: srv.URL + "/login"})
				return err
			}
			untrusted := func(err error) bool {
				return providers.KindOf(err) == providers.ProviderUnavailable && strings.Contains(err.Error(), reasonUntrusted)
			}

			if err := login(newHTTPClient(providers.Options{}, viaProxy)); !untrusted(err) {
				t.Fatalf("without RootCAs: %v, want the certificate refused", err)
			}
			var pool atomic.Pointer[x509.CertPool]
			pool.Store(poolOf(first))
			c := newHTTPClient(providers.Options{RootCAs: pool.Load}, viaProxy)
			defer c.CloseIdleConnections()
			if err := login(c); err != nil {
				t.Fatalf("with the first CA: %v", err)
			}
			if route == "direct" && proto.Load() != 2 {
				t.Errorf("HTTP/%d, want HTTP/2", proto.Load())
			}

			// The server's certificate changes; the pool has not yet. The
			// server closed its connections: the client forgets its idle
			// one now rather than find it closed by sending on it.
			srv.ServeCertificateOf(t, second)
			c.CloseIdleConnections()
			if err := login(c); !untrusted(err) {
				t.Fatalf("a certificate of the second CA with the first CA's pool: %v, want it refused", err)
			}
			pool.Store(poolOf(second))
			if err := login(c); err != nil {
				t.Fatalf("with the second CA's pool: %v", err)
			}
			// Another pool: the idle connection verified with the last one
			// is not used, the server is verified again, and refused.
			pool.Store(poolOf(third))
			if err := login(c); !untrusted(err) {
				t.Errorf("a pool without the server's CA, a connection idle: %v, want it refused", err)
			}
			if route != "direct" && tunnels.Load() == tunnelsBefore {
				t.Error("no request went through the proxy")
			}
		})
	}
}

// startConnectProxy is an HTTP proxy that tunnels CONNECT requests, and
// counts them.
func startConnectProxy(t *testing.T) (*url.URL, *atomic.Int32) {
	t.Helper()
	var tunnels atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		upstream, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buffered, err := http.NewResponseController(w).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		tunnels.Add(1)
		_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		go func() {
			_, _ = io.Copy(upstream, buffered)
			upstream.Close()
			conn.Close()
		}()
		go func() {
			_, _ = io.Copy(conn, upstream)
			upstream.Close()
			conn.Close()
		}()
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u, &tunnels
}
