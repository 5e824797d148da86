package providertest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is what a scripted failure answers.
type Fault int

const (
	// StatusError answers Failure.Status (default 503) with the provider's
	// error body for that status (for the partner API's 400 and 401, the
	// documented ones).
	StatusError Fault = iota
	// NotJSON answers Failure.Status (default 200) with an HTML page.
	NotJSON
	// NoToken answers Failure.Status (default: the success status) with the
	// success shape but no token.
	NoToken
	// HugeBody answers Failure.Status (default: the success status) with a
	// success-shaped body of 2 MiB.
	HugeBody
	// EmptyBody answers Failure.Status (default: the success status) with
	// no body.
	EmptyBody
	// ResetConnection drops the connection with a TCP reset, answering nothing.
	ResetConnection
	// Redirect answers Failure.Status (default 307) pointing elsewhere.
	Redirect
)

// Failure is one scripted bad answer.
type Failure struct {
	Fault Fault
	// Status overrides the Fault's default status.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
}

// HugeBodySize is the size of a HugeBody answer: over the 1 MiB clients read.
const HugeBodySize = 2 << 20

const htmlPage = "<!DOCTYPE html>\n<html><head><title>Maintenance</title></head><body><h1>We'll be back soon</h1></body></html>\n"

// route wraps a provider's login handler with counting, latency, hangs and
// scripted failures.
func (s *Server) route(provider, method string, login func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			http.Error(w, "server closing", http.StatusServiceUnavailable)
			return
		}
		s.inflight.Add(1)
		defer s.inflight.Done()
		st := s.state(provider)
		st.attempts++
		if r.Method != method {
			s.mu.Unlock()
			w.Header().Set("Allow", method)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		latency, hang := st.latency, st.hang
		failure, fail := st.nextFailure()
		s.mu.Unlock()

		// Read the body first: the server notices an abandoned request only
		// once it has, and hanging handlers must see that.
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes))
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))

		// An abandoned request or a closing server gets no answer at all:
		// ErrAbortHandler drops the connection without writing one.
		if latency > 0 && !s.wait(r, latency) {
			panic(http.ErrAbortHandler)
		}
		if hang {
			s.wait(r, -1)
			panic(http.ErrAbortHandler)
		}
		if fail {
			s.fail(w, provider, failure)
			return
		}
		login(w, r)
	})
}

// nextFailure pops a FailNext failure, or reports FailEvery's turn.
func (st *providerState) nextFailure() (Failure, bool) {
	if len(st.next) > 0 {
		f := st.next[0]
		st.next = st.next[1:]
		return f, true
	}
	if st.every > 0 {
		st.sinceSet++
		if st.sinceSet%st.every == 0 {
			return st.everyFail, true
		}
	}
	return Failure{}, false
}

// wait blocks for d (forever when d < 0) and reports whether it ran out,
// rather than the request being abandoned or the server closing.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-r.Context().Done():
	case <-s.closing:
	}
	return false
}

func (s *Server) fail(w http.ResponseWriter, provider string, f Failure) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	status := func(def int) int {
		if f.Status != 0 {
			return f.Status
		}
		return def
	}
	success := http.StatusOK
	if provider == Partner {
		success = http.StatusCreated
	}
	switch f.Fault {
	case NotJSON:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status(http.StatusOK))
		_, _ = w.Write([]byte(htmlPage))
	case NoToken:
		body := noTokenBody[provider]
		if provider == AML {
			body = s.amlSuccess(`{}`)
		}
		writeBody(w, status(success), body)
	case HugeBody:
		body := hugeBody(provider)
		if provider == AML {
			body = s.amlSuccess(`{"access_token": "` + strings.Repeat("a", HugeBodySize) + `"}`)
		}
		writeBody(w, status(success), body)
	case EmptyBody:
		w.WriteHeader(status(success))
	case ResetConnection:
		resetConnection(w)
	case Redirect:
		w.Header().Set("Location", "/moved"+pathOf[provider])
		w.WriteHeader(status(http.StatusTemporaryRedirect))
	default:
		code := status(http.StatusServiceUnavailable)
		writeBody(w, code, errorBody(provider, code))
	}
}

var pathOf = map[string]string{AML: AMLPath, AmpliFi: AmpliFiPath, Partner: PartnerPath, OAuth2: OAuth2Path}

// noTokenBody and hugeBody are the AmpliFi and partner API answers; AML
// Watcher's follow SetAMLDataArray (Server.amlSuccess).
var noTokenBody = map[string]string{
	AmpliFi: `{"success": true, "userId": "qweaurl8kgtlv9pc", "AFiUserId": "qweaurl8kgtlv9pc", "segment": "demo"}`,
	Partner: `{"statusCode": "Created"}`,
	OAuth2:  `{"token_type": "Bearer", "expires_in": 3600}`,
}

func hugeBody(provider string) string {
	filler := strings.Repeat("a", HugeBodySize)
	switch provider {
	case AmpliFi:
		return `{"success": true, "token": "` + filler + `", "dtsExpiry": "2099-01-01T00:00:00.000Z"}`
	case OAuth2:
		return `{"access_token": "` + filler + `", "token_type": "Bearer", "expires_in": 3600}`
	}
	return filler
}

// errorBody is provider's error answer for status.
func errorBody(provider string, status int) string {
	text := http.StatusText(status)
	switch provider {
	case AML:
		switch status {
		case http.StatusUnauthorized:
			return amlFail(`"Invalid email or password."`)
		case http.StatusUnprocessableEntity:
			return amlFail(`{"password": ["The password must be at least 8 characters."]}`)
		}
		return amlFail(strconv.Quote(text))
	case Partner:
		switch status {
		case http.StatusBadRequest:
			return partnerMissing("secret")
		case http.StatusUnauthorized:
			return partnerUnauthorized
		}
		return `{"statusCode": "Error", "error": {"name": "Error", "message": ` + strconv.Quote(text) + `}}`
	case OAuth2:
		switch {
		case status == http.StatusUnauthorized:
			return `{"error": "invalid_client", "error_description": "Client authentication failed."}`
		case status < 500:
			return `{"error": "invalid_request", "error_description": ` + strconv.Quote(text) + `}`
		}
		return `{"error": "server_error", "error_description": ` + strconv.Quote(text) + `}`
	}
	return `{"success": false, "message": ` + strconv.Quote(text) + `}`
}

func writeBody(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// resetConnection closes the connection with SO_LINGER 0, so the client
// sees a reset rather than an orderly close.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // HTTP/2: aborts the stream instead
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
