package login

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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

func TestClock(t *testing.T) {
	if Clock(providers.Options{})().IsZero() {
		t.Error("no default clock")
	}
	now := func() time.Time { return time.Time{} }
	if !Clock(providers.Options{Now: now})().IsZero() {
		t.Error("the given clock was replaced")
	}
}
