package providers

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
)

func TestNewHTTPClientDefaults(t *testing.T) {
	c := NewHTTPClient(ClientOptions{})
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
	if ua.userAgent != "tokensync/"+Version {
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

	c = NewHTTPClient(ClientOptions{Timeout: time.Second, UserAgent: "x/1"})
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
	c := NewHTTPClient(ClientOptions{
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
	_, err := SendJSON(context.Background(), NewHTTPClient(ClientOptions{}), time.Now, JSONRequest{
		Provider: "Test", Method: http.MethodPost, URL: srv.URL,
	})
	if KindOf(err) != ProviderUnavailable || !strings.Contains(err.Error(), "certificate could not be verified") {
		t.Errorf("err = %v, want a certificate verification failure", err)
	}
}

func TestOptionsWithDefaults(t *testing.T) {
	o := Options{}.WithDefaults()
	if o.HTTPClient == nil || o.Now == nil {
		t.Fatalf("defaults missing: %+v", o)
	}
	client := &http.Client{}
	now := func() time.Time { return time.Time{} }
	o = Options{HTTPClient: client, Now: now}.WithDefaults()
	if o.HTTPClient != client || !o.Now().IsZero() {
		t.Error("given fields were replaced")
	}
}
