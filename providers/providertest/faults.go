package providertest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tokensync/tokensync/providers/providertest/fake"
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

func (f Fault) String() string {
	switch f {
	case StatusError:
		return "StatusError"
	case NotJSON:
		return "NotJSON"
	case NoToken:
		return "NoToken"
	case HugeBody:
		return "HugeBody"
	case EmptyBody:
		return "EmptyBody"
	case ResetConnection:
		return "ResetConnection"
	case Redirect:
		return "Redirect"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

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

// route wraps a fake's login with counting, latency, hangs and scripted
// failures.
func (s *Server) route(f fake.Provider) http.Handler {
	provider, method := f.Name, f.Method
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
		body, err := io.ReadAll(io.LimitReader(r.Body, fake.MaxRequestBytes))
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
			s.fail(w, f, failure)
			return
		}
		f.Login(login{s: s, provider: provider}, w, r)
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

func (s *Server) fail(w http.ResponseWriter, f fake.Provider, failure Failure) {
	if failure.RetryAfter != "" {
		w.Header().Set("Retry-After", failure.RetryAfter)
	}
	status := func(def int) int {
		if failure.Status != 0 {
			return failure.Status
		}
		return def
	}
	success := f.Success()
	switch failure.Fault {
	case NotJSON:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status(http.StatusOK))
		_, _ = w.Write([]byte(htmlPage))
	case NoToken:
		fake.WriteJSON(w, status(success), f.NoTokenBody)
	case HugeBody:
		fake.WriteJSON(w, status(success), f.HugeBody(strings.Repeat("a", HugeBodySize)))
	case EmptyBody:
		w.WriteHeader(status(success))
	case ResetConnection:
		resetConnection(w)
	case Redirect:
		w.Header().Set("Location", "/moved"+f.Path)
		w.WriteHeader(status(http.StatusTemporaryRedirect))
	default:
		code := status(http.StatusServiceUnavailable)
		fake.WriteJSON(w, code, f.ErrorBody(code))
	}
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
