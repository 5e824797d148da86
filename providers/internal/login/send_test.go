package login

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
)

func TestJoinURL(t *testing.T) {
	for _, tc := range []struct {
		endpoint, want string
		wantErr        bool
	}{
		{endpoint: "https://api.example.com", want: "https://api.example.com/login"},
		{endpoint: "https://api.example.com/", want: "https://api.example.com/login"},
		{endpoint: "  https://api.example.com/  ", want: "https://api.example.com/login"},
		{endpoint: "https://api.example.com/base", want: "https://api.example.com/base/login"},
		{endpoint: "https://api.example.com/base/", want: "https://api.example.com/base/login"},
		{endpoint: "http://127.0.0.1:8080/a/b//", want: "http://127.0.0.1:8080/a/b/login"},
		{endpoint: "https://api.example.com/v1?tenant=x#frag", want: "https://api.example.com/v1/login?tenant=x"},
		{endpoint: "HTTPS://API.example.com", want: "https://API.example.com/login"},
		// A Unicode space is not trimmed: it is part of the host written,
		// which the endpoint policy then refuses.
		{endpoint: "https://api.example.com\u00a0", want: "https://api.example.com%C2%A0/login"},
		{endpoint: "", wantErr: true},
		{endpoint: "api.example.com", wantErr: true},
		{endpoint: "ftp://api.example.com", wantErr: true},
		{endpoint: "https://", wantErr: true},
		{endpoint: "https:opaque", wantErr: true},
		{endpoint: "https://user:SECRET@api.example.com", wantErr: true},
		{endpoint: "https://api.example.com/%zz", wantErr: true},
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			got, err := JoinURL(tc.endpoint, "/login")
			if tc.wantErr {
				if providers.KindOf(err) != providers.EndpointNotAllowed || err.(*providers.Error).Kind != providers.EndpointNotAllowed {
					t.Fatalf("err = %v, want providers.EndpointNotAllowed", err)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Errorf("message %q quotes the endpoint", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("JoinURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestJoinURLRefusesDotSegments: a path that could leave the endpoint's is
// refused, in the endpoint or in the login path, in every spelling; the
// join never resolves one (url.JoinPath would).
func TestJoinURLRefusesDotSegments(t *testing.T) {
	for _, tc := range []struct{ endpoint, path, want string }{
		{"https://gw.example.com/tenant-a", "../admin/keys", "the login path is refused"},
		{"https://gw.example.com/tenant-a", "/../admin/keys", "the login path is refused"},
		{"https://gw.example.com/tenant-a/", "./../admin", "the login path is refused"},
		{"https://gw.example.com/tenant-a", "%2e%2e/admin/keys", "the login path is refused"},
		{"https://gw.example.com/tenant-a", "%2E%2E/admin/keys", "the login path is refused"},
		{"https://gw.example.com/tenant-a", ".%2e/admin/keys", "the login path is refused"},
		{"https://gw.example.com/tenant-a", "..;/admin/keys", "the login path is refused"},
		{"https://gw.example.com/tenant-a", "%252e%252e/admin/keys", "the login path is refused"},
		{"https://gw.example.com/tenant-a", "x%2f..%2f..%2fadmin", "the login path is refused"},
		{"https://gw.example.com/tenant-a", `..\admin`, "the login path is refused"},
		{"https://gw.example.com/tenant-a", "login/.", "the login path is refused"},
		{"https://gw.example.com/tenant-a/../admin", "/login", "the endpoint's path is refused"},
		{"https://gw.example.com/tenant-a/%2e%2e", "/login", "the endpoint's path is refused"},
		{"https://gw.example.com/tenant-a%2f..", "/login", "the endpoint's path is refused"},
		{`https://gw.example.com/tenant-a\..`, "/login", "the endpoint's path is refused"},
		{"https://gw.example.com/tenant-a/..", "", "the endpoint's path is refused"},
	} {
		got, err := JoinURL(tc.endpoint, tc.path)
		if providers.KindOf(err) != providers.EndpointNotAllowed || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("JoinURL(%q, %q) = %q, %v; want EndpointNotAllowed containing %q", tc.endpoint, tc.path, got, err, tc.want)
		}
	}
	// Dots that are not whole segments are ordinary characters.
	for _, tc := range []struct{ endpoint, path, want string }{
		{"https://gw.example.com/tenant-a", "/.well-known/token", "https://gw.example.com/tenant-a/.well-known/token"},
		{"https://gw.example.com/tenant-a", "/v1.2/login...", "https://gw.example.com/tenant-a/v1.2/login..."},
	} {
		if got, err := JoinURL(tc.endpoint, tc.path); err != nil || got != tc.want {
			t.Errorf("JoinURL(%q, %q) = %q, %v; want %q", tc.endpoint, tc.path, got, err, tc.want)
		}
	}
}

func send(t *testing.T, h http.HandlerFunc) (*Reply, error) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	now := func() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }
	return SendJSON(context.Background(), NewHTTPClient(providers.Options{}), now, JSONRequest{
		Provider: "Test", Method: http.MethodPost, URL: srv.URL + "/login", Body: []byte(`{"a":"b"}`), Accept: "application/json",
	})
}

func TestSendJSONRequest(t *testing.T) {
	reply, err := send(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/login" || string(body) != `{"a":"b"}` ||
			r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Accept") != "application/json" ||
			r.Header.Get("User-Agent") != DefaultUserAgent {
			t.Errorf("request = %s %s %q %v", r.Method, r.URL.Path, body, r.Header)
		}
		w.Header().Set("X-Test", "1")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("ok"))
	})
	if err != nil {
		t.Fatalf("SendJSON: %v", err)
	}
	if reply.StatusCode != http.StatusCreated || string(reply.Body) != "ok" || reply.Header.Get("X-Test") != "1" {
		t.Errorf("reply = %+v", reply)
	}
}

func TestSendJSONStatuses(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter string
		kind       providers.ErrorKind // "" when the reply is left to the provider
		wantRetry  time.Duration
		// unavailable: the host could not serve the request at all
		// (providers.Error.Unavailable): 502, 503, 504 only.
		unavailable bool
	}{
		{status: 200}, {status: 201}, {status: 204}, {status: 400}, {status: 401}, {status: 403}, {status: 404}, {status: 422},
		{status: 301, kind: providers.InvalidResponse}, {status: 302, kind: providers.InvalidResponse}, {status: 304, kind: providers.InvalidResponse},
		{status: 307, kind: providers.InvalidResponse}, {status: 308, kind: providers.InvalidResponse},
		{status: 408, kind: providers.ProviderUnavailable},
		{status: 429, kind: providers.ProviderUnavailable},
		{status: 429, retryAfter: "7", kind: providers.ProviderUnavailable, wantRetry: 7 * time.Second},
		{status: 500, kind: providers.ProviderUnavailable},
		{status: 501, kind: providers.ProviderUnavailable},
		{status: 502, kind: providers.ProviderUnavailable, unavailable: true},
		{status: 503, retryAfter: "Mon, 01 Jan 2024 00:01:00 GMT", kind: providers.ProviderUnavailable, wantRetry: time.Minute, unavailable: true},
		{status: 504, kind: providers.ProviderUnavailable, unavailable: true},
		{status: 599, kind: providers.ProviderUnavailable},
		{status: 600, kind: providers.InvalidResponse},
		{status: 999, kind: providers.InvalidResponse},
	} {
		t.Run(http.StatusText(tc.status)+tc.retryAfter, func(t *testing.T) {
			reply, err := send(t, func(w http.ResponseWriter, _ *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(tc.status)
			})
			if tc.kind == "" {
				if err != nil || reply.StatusCode != tc.status {
					t.Fatalf("SendJSON = %+v, %v; want the reply", reply, err)
				}
				return
			}
			if providers.KindOf(err) != tc.kind || err.(*providers.Error).Kind != tc.kind {
				t.Fatalf("err = %v, want %s", err, tc.kind)
			}
			if got := providers.RetryAfterOf(err); got != tc.wantRetry {
				t.Errorf("RetryAfter = %s, want %s", got, tc.wantRetry)
			}
			if pe := err.(*providers.Error); pe.Status != tc.status || pe.Unavailable != tc.unavailable {
				t.Errorf("Status %d, Unavailable %v; want %d, %v", pe.Status, pe.Unavailable, tc.status, tc.unavailable)
			}
		})
	}
}

func TestSendJSONBodyLimit(t *testing.T) {
	for _, tc := range []struct {
		size int
		ok   bool
	}{{0, true}, {MaxResponseBytes, true}, {MaxResponseBytes + 1, false}, {3 * MaxResponseBytes, false}} {
		reply, err := send(t, func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat("x", tc.size)))
		})
		if tc.ok {
			if err != nil || len(reply.Body) != tc.size {
				t.Errorf("%d bytes: err = %v", tc.size, err)
			}
			continue
		}
		if providers.KindOf(err) != providers.InvalidResponse || !strings.Contains(err.Error(), "response body larger than 1 MiB") {
			t.Errorf("%d bytes: err = %v, want providers.InvalidResponse", tc.size, err)
		}
	}
}

// TestSendJSONBounds: every answer Send and Transport pass on is within
// CheckJSON's bounds, whatever its status: JSON past them never reaches a
// provider, nor a library that decodes the body itself.
func TestSendJSONBounds(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		ok         bool
	}{
		{"32 levels", nested(MaxJSONDepth), 200, true},
		{"33 levels", nested(MaxJSONDepth + 1), 200, false},
		{"33 levels in a 401", nested(MaxJSONDepth + 1), 401, false},
		{"10,000 values", valuesArray(MaxJSONValues), 200, true},
		{"10,001 values", valuesArray(MaxJSONValues + 1), 200, false},
		{"10,001 values in a 400", valuesArray(MaxJSONValues + 1), 400, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			reply, sendErr := SendJSON(context.Background(), NewHTTPClient(providers.Options{}), time.Now, JSONRequest{Provider: "Test", Method: http.MethodPost, URL: srv.URL})
			seen := false
			c := &http.Client{Transport: &Transport{Provider: "Test", Base: NewHTTPClient(providers.Options{}).Transport, Seen: func(*Reply) { seen = true }}, CheckRedirect: NoRedirects}
			resp, transportErr := c.Get(srv.URL)
			if transportErr == nil {
				resp.Body.Close()
			}
			if tc.ok {
				if sendErr != nil || transportErr != nil || string(reply.Body) != tc.body || !seen {
					t.Errorf("Send: %v; Transport: %v", sendErr, transportErr)
				}
				return
			}
			for via, err := range map[string]error{"Send": sendErr, "Transport": transportErr} {
				var pe *providers.Error
				if !errors.As(err, &pe) || pe.Kind != providers.InvalidResponse || !strings.Contains(pe.Message, "the most tokensync reads") {
					t.Errorf("%s: err = %v, want an InvalidResponse naming the limit", via, err)
				}
			}
			if seen {
				t.Error("Transport passed the answer on")
			}
		})
	}
}

func TestSendJSONNeverFollowsRedirects(t *testing.T) {
	var followed bool
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusPermanentRedirect)
	})
	mux.HandleFunc("/target", func(http.ResponseWriter, *http.Request) { followed = true })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// A caller-supplied client that would follow redirects.
	_, err := SendJSON(context.Background(), &http.Client{}, time.Now, JSONRequest{Provider: "Test", Method: http.MethodPost, URL: srv.URL + "/login"})
	if providers.KindOf(err) != providers.InvalidResponse || followed {
		t.Errorf("err = %v, followed = %v", err, followed)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"30", 30 * time.Second},
		{" 30 ", 30 * time.Second},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"86400", 24 * time.Hour},
		{"86401", 24 * time.Hour},
		{"99999999999999999999999", 24 * time.Hour},
		{"18446744073709551615", 24 * time.Hour},
		{"Mon, 01 Jan 2024 00:02:00 GMT", 2 * time.Minute},
		{"Monday, 01-Jan-24 00:02:00 GMT", 2 * time.Minute},
		{"Mon Jan  1 00:02:00 2024", 2 * time.Minute},
		{"Sun, 31 Dec 2023 23:59:00 GMT", 0},
		{"Fri, 01 Jan 2100 00:00:00 GMT", 24 * time.Hour},
	} {
		if got := ParseRetryAfter(tc.value, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tc.value, got, tc.want)
		}
	}
}

// TestClientError: a 4xx no provider rule covered is InvalidCredentials,
// but a 401 or 403, which only the provider's documented rejection makes
// AuthenticationFailed, is RequestBlocked.
func TestClientError(t *testing.T) {
	html := http.Header{"Content-Type": {"text/html"}}
	for status, kind := range map[int]providers.ErrorKind{
		400: providers.InvalidCredentials, 401: providers.RequestBlocked, 403: providers.RequestBlocked, 404: providers.InvalidCredentials, 409: providers.InvalidCredentials,
	} {
		err := ClientError("Test", &Reply{StatusCode: status, Header: html, Body: []byte("<html>" + sentinel + "</html>")}, "a and b")
		if err.Kind != kind || strings.Contains(err.Message, sentinel) {
			t.Errorf("ClientError(%d) = %s %q", status, err.Kind, err.Message)
		}
		if err.Status != status || err.Unavailable {
			t.Errorf("ClientError(%d): Status %d, Unavailable %v; want the answer's status, a host that answered", status, err.Status, err.Unavailable)
		}
		if kind == providers.InvalidCredentials && !strings.Contains(err.Message, "a and b") {
			t.Errorf("ClientError(%d) = %q, want the keys named", status, err.Message)
		}
	}
}

// sentinel stands for a response body: no message may quote it.
const sentinel = "SENTINEL-BODY-7890"

// TestBlocked: the message of a RequestBlocked names the status and what the
// answer was, never its body; the media type is quoted only when it is a
// short lower-case type/subtype, since the server writes it.
func TestBlocked(t *testing.T) {
	const suffix = ": something in front of the provider refused the request; the credentials were not judged"
	for _, tc := range []struct {
		status      int
		contentType string // "-": no header
		body        string
		want        string
	}{
		{403, "text/html", "<html>" + sentinel + "</html>", "HTTP 403 with a text/html answer" + suffix},
		{403, "text/html; charset=utf-8", "<html/>", "HTTP 403 with a text/html answer" + suffix},
		{401, "application/json", `{"message": "` + sentinel + `"}`, "HTTP 401 with an application/json answer" + suffix},
		{401, "application/problem+json", `{}`, "HTTP 401 with an application/problem+json answer"},
		{403, "application/vnd.api-v1.2+json", `{}`, "HTTP 403 with an application/vnd.api-v1.2+json answer"},
		{403, " text/plain ;x=" + sentinel, "denied", "HTTP 403 with a text/plain answer"},
		{403, "text/html", "", "HTTP 403 with an empty answer" + suffix},
		{401, "-", " \r\n", "HTTP 401 with an empty answer"},
		{403, "-", "denied", "HTTP 403 with an answer without a Content-Type"},
		{403, "", "denied", "HTTP 403 with an answer without a Content-Type"},
		{403, sentinel, "denied", "HTTP 403 with an answer of an unrecognised type"},
		{403, "text/" + sentinel, "denied", "HTTP 403 with an answer of an unrecognised type"},
		{403, "TEXT/HTML", "denied", "HTTP 403 with an answer of an unrecognised type"},
		{403, "text/html<script>", "denied", "HTTP 403 with an answer of an unrecognised type"},
		{403, "text/html/x", "denied", "HTTP 403 with an answer of an unrecognised type"},
		{403, "text/", "denied", "HTTP 403 with an answer of an unrecognised type"},
		{403, "/html", "denied", "HTTP 403 with an answer of an unrecognised type"},
		{403, "text/" + strings.Repeat("a", maxMediaTypeLen), "denied", "HTTP 403 with an answer of an unrecognised type"},
		{403, "text/" + strings.Repeat("a", maxMediaTypeLen-5), "denied", "HTTP 403 with a text/" + strings.Repeat("a", maxMediaTypeLen-5) + " answer"},
		{403, "text/h\u00e9ml", "denied", "HTTP 403 with an answer of an unrecognised type"},
	} {
		header := http.Header{}
		if tc.contentType != "-" {
			header.Set("Content-Type", tc.contentType)
		}
		err := Blocked("AML Watcher", &Reply{StatusCode: tc.status, Header: header, Body: []byte(tc.body)})
		if err.Kind != providers.RequestBlocked || !strings.HasPrefix(err.Message, tc.want) || strings.Contains(err.Message, sentinel) {
			t.Errorf("Content-Type %q, body %q: %s %q, want RequestBlocked starting %q", tc.contentType, tc.body, err.Kind, err.Message, tc.want)
		}
		if !strings.Contains(err.Message, "spec.endpoint is AML Watcher") {
			t.Errorf("%q does not say what to check", err.Message)
		}
	}
}

func TestJoinURLWithoutPath(t *testing.T) {
	for endpoint, want := range map[string]string{
		"https://idp.example.com/oauth/token":   "https://idp.example.com/oauth/token",
		"https://idp.example.com/oauth/token/":  "https://idp.example.com/oauth/token/",
		" https://idp.example.com/t#fragment ":  "https://idp.example.com/t",
		"https://idp.example.com/t?tenant=x":    "https://idp.example.com/t?tenant=x",
		"http://127.0.0.1:9000":                 "http://127.0.0.1:9000",
		"https://idp.example.com/realms/a%20b/": "https://idp.example.com/realms/a%20b/",
	} {
		if got, err := JoinURL(endpoint, ""); err != nil || got != want {
			t.Errorf("JoinURL(%q, \"\") = %q, %v; want %q", endpoint, got, err, want)
		}
	}
	if _, err := JoinURL("https://user:SECRET@idp.example.com/token", ""); providers.KindOf(err) != providers.EndpointNotAllowed {
		t.Errorf("user-info accepted: %v", err)
	}
	// An encoded slash may be read as a separator: refused, as the
	// endpoint policy refuses it.
	if _, err := JoinURL("https://idp.example.com/realms/a%2Fb/", ""); providers.KindOf(err) != providers.EndpointNotAllowed {
		t.Errorf("encoded slash accepted: %v", err)
	}
}

// TestSendHeaders: Send sends the given headers and body (none when nil),
// and the client's User-Agent wins.
func TestSendHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   []byte
		header http.Header
	}{
		{"form", []byte("a=b"), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "X-Api-Key": {"k"}, "User-Agent": {"mine"}}},
		{"no body", nil, http.Header{"Authorization": {"Basic eDp5"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if string(body) != string(tc.body) || r.Method != http.MethodPut {
					t.Errorf("request %s %q", r.Method, body)
				}
				for k := range tc.header {
					want := tc.header.Get(k)
					if k == "User-Agent" {
						want = DefaultUserAgent
					}
					if got := r.Header.Get(k); got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
				if tc.body == nil && (r.ContentLength != 0 || r.Header.Get("Content-Type") != "") {
					t.Errorf("a request without a body has Content-Length %d, Content-Type %q", r.ContentLength, r.Header.Get("Content-Type"))
				}
			}))
			defer srv.Close()
			_, err := Send(context.Background(), NewHTTPClient(providers.Options{}), time.Now, Request{
				Provider: "Test", Method: http.MethodPut, URL: srv.URL, Body: tc.body, Header: tc.header,
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTransport: a library's request through Transport is classified as
// Send classifies it, and what Send leaves to the provider is passed on.
func TestTransport(t *testing.T) {
	now := func() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		status     int
		body       string
		retryAfter string
		kind       providers.ErrorKind // "" when passed on
		wantRetry  time.Duration
	}{
		{status: 200, body: `{"access_token":"x"}`},
		{status: 400, body: `{"error":"invalid_scope"}`},
		{status: 401, body: `{"error":"invalid_client"}`},
		{status: 429, retryAfter: "42", kind: providers.ProviderUnavailable, wantRetry: 42 * time.Second},
		{status: 503, kind: providers.ProviderUnavailable},
		{status: 302, kind: providers.InvalidResponse},
		{status: 200, body: strings.Repeat("x", MaxResponseBytes+1), kind: providers.InvalidResponse},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			var seen *Reply
			c := &http.Client{
				Transport:     &Transport{Provider: "Test", Base: NewHTTPClient(providers.Options{}).Transport, Now: now, Seen: func(r *Reply) { seen = r }},
				CheckRedirect: NoRedirects,
			}
			resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("x"))
			if tc.kind != "" {
				var pe *providers.Error
				if !errors.As(err, &pe) || pe.Kind != tc.kind || pe.RetryAfter != tc.wantRetry {
					t.Fatalf("err = %v, want a %s with RetryAfter %s", err, tc.kind, tc.wantRetry)
				}
				if seen != nil {
					t.Error("Seen called for a classified answer")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || string(body) != tc.body || seen == nil || seen.StatusCode != tc.status {
				t.Errorf("resp = %d %q, seen %+v", resp.StatusCode, body, seen)
			}
		})
	}

	// A refused dial reaches the caller as the policy's error.
	c := &http.Client{Transport: &Transport{Provider: "Test", Base: NewHTTPClient(providers.Options{
		DialControl: func(string, string, syscall.RawConn) error {
			return providers.Errorf(providers.EndpointNotAllowed, "refused")
		},
	}).Transport}}
	_, err := c.Get("http://127.0.0.1:1/")
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != providers.EndpointNotAllowed {
		t.Errorf("err = %v, want EndpointNotAllowed", err)
	}
}
