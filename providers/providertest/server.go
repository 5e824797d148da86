// Package providertest is a fake of the login providers, written from
// their documentation (not from tokensync's clients), for controller tests,
// demos and benchmarks, in-process or behind a small binary.
//
// One Server answers all of them on the same base URL:
//
//	POST /api/get-access-token  AML Watcher  {"email", "password"}
//	PUT  /token                 AmpliFi      {"channel", ...channel fields}
//	POST /login                 partner API  {"accessKey", "secret"}
//	POST /oauth/token           OAuth2       client credentials grant (RFC 6749 §4.4)
//
// so a TokenRequest's endpoint is Server.URL() whatever its provider (for
// oauth2, Server.URL()+OAuth2Path: its endpoint is the token URL). The
// declarative http login has no wire format of its own: it logs in to any
// of them.
//
// Answers follow the documents: AML Watcher's SUCCESS body with a JWT access
// token (data an object as in its sample, or with SetAMLDataArray an array
// of one object as in its response table), AmpliFi's success body with dtsExpiry in RFC 3339 with milliseconds,
// the partner API's 201 Created with the bare JWT, and the OAuth2 token
// endpoint's RFC 6749 §5.1 answer with a JWT access token and expires_in. Failures are the
// documented ones where there are any: the partner API's 400
// InvalidRequestFormatError naming the missing property and its 401
// AuthenticationError with reason AccessKeyUnauthorized; AML Watcher answers
// wrong credentials with 401 and a FAIL body about invalid credentials, and
// a missing field or a password under 8 characters with 422 and a FAIL body;
// AmpliFi answers wrong credentials with 200 and success: false, and a body
// its schema refuses with 400 and success: false; the OAuth2 token endpoint
// answers as RFC 6749 §5.2 says: a wrong or missing client authentication
// (HTTP Basic, form-decoded, or client_id and client_secret in the form;
// both at once is invalid_request) with 401 invalid_client, another grant
// with 400 unsupported_grant_type. The schema checks accept
// the documentation's own examples: android without signature, test without
// dtsValueString.
//
// By default any credentials that pass those checks log in; SetValid
// restricts a provider to given credential sets (for OAuth2, the keys
// clientId and clientSecret). Token lifetimes default to 3h (AML Watcher, as
// documented), 1h (partner API, as in its example token), 1h (AmpliFi) and
// 1h (OAuth2), and are set with SetLifetime; JWTs carry iat and
// exp = iat + lifetime. Every token issued is unique.
//
// Faults are scripted per provider: FailNext and FailNextWith answer the next
// requests with an error status or a malformed answer (see Fault), FailEvery
// fails every k-th request, SetLatency delays answers and Hang holds
// requests until the client gives up or the server closes. Counters
// (Attempts, Logins, LoginsFor) tell what the clients did. A Server is safe
// for concurrent use.
package providertest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Provider names, as in TokenRequests.
const (
	AML     = "aml"
	AmpliFi = "amplifi"
	Partner = "partner"
	OAuth2  = "oauth2"
)

// Names returns the providers the Server fakes, sorted.
func Names() []string { return []string{AML, AmpliFi, OAuth2, Partner} }

// Paths the Server answers on.
const (
	AMLPath     = "/api/get-access-token"
	AmpliFiPath = "/token"
	PartnerPath = "/login"
	OAuth2Path  = "/oauth/token"
)

var defaultLifetime = map[string]time.Duration{
	AML:     3 * time.Hour,
	AmpliFi: time.Hour,
	Partner: time.Hour,
	OAuth2:  time.Hour,
}

// Server is the fake. Create it with Start, NewServer or New.
type Server struct {
	mu        sync.Mutex
	providers map[string]*providerState
	now       func() time.Time
	// amlDataArray: AML Watcher answers carry data as an array.
	amlDataArray bool
	signKey      []byte
	issued       uint64

	handler   http.Handler
	closed    bool // guarded by mu; no handler starts once set
	closing   chan struct{}
	closeOnce sync.Once
	inflight  sync.WaitGroup

	httpServer *http.Server
	listener   net.Listener
	served     chan struct{}
}

type providerState struct {
	valid     []map[string]string
	lifetime  time.Duration
	latency   time.Duration
	hang      bool
	next      []Failure
	every     int
	everyFail Failure
	sinceSet  int

	attempts  int
	logins    int
	loginsFor map[string]int
	lastToken string
}

// Option configures a Server at creation.
type Option func(*Server)

// WithClock sets the clock used for iat, exp and dtsExpiry (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// WithValid is SetValid at creation.
func WithValid(provider string, creds ...map[string]string) Option {
	return func(s *Server) { s.SetValid(provider, creds...) }
}

// WithLifetime is SetLifetime at creation.
func WithLifetime(provider string, d time.Duration) Option {
	return func(s *Server) { s.SetLifetime(provider, d) }
}

// WithAMLDataArray is SetAMLDataArray(true) at creation.
func WithAMLDataArray() Option {
	return func(s *Server) { s.SetAMLDataArray(true) }
}

// New returns a Server that does not listen: serve its Handler yourself,
// or call Listen.
func New(opts ...Option) *Server {
	s := &Server{
		providers: map[string]*providerState{},
		now:       time.Now,
		signKey:   randomBytes(32),
		closing:   make(chan struct{}),
	}
	for name, lifetime := range defaultLifetime {
		s.providers[name] = &providerState{lifetime: lifetime, loginsFor: map[string]int{}}
	}
	mux := http.NewServeMux()
	mux.Handle(AMLPath, s.route(AML, http.MethodPost, s.loginAML))
	mux.Handle(AmpliFiPath, s.route(AmpliFi, http.MethodPut, s.loginAmpliFi))
	mux.Handle(PartnerPath, s.route(Partner, http.MethodPost, s.loginPartner))
	mux.Handle(OAuth2Path, s.route(OAuth2, http.MethodPost, s.loginOAuth2))
	s.handler = mux
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// NewServer returns a Server listening on addr, such as "127.0.0.1:0" or
// "127.0.0.1:18080" ("" means "127.0.0.1:0").
func NewServer(addr string, opts ...Option) (*Server, error) {
	s := New(opts...)
	if err := s.Listen(addr); err != nil {
		return nil, err
	}
	return s, nil
}

// Start returns a Server listening on a free loopback port, closed when the
// test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := NewServer("127.0.0.1:0", opts...)
	if err != nil {
		tb.Fatalf("start fake providers: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Listen starts serving plain HTTP on addr ("" means "127.0.0.1:0").
func (s *Server) Listen(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener != nil {
		return errors.New("providertest: server is already listening")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("providertest: listen on %s: %w", addr, err)
	}
	s.listener = l
	s.httpServer = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		_ = s.httpServer.Serve(l)
	}()
	return nil
}

// Handler answers the providers' login paths.
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the address listened on, "" before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// URL is the base URL of all the providers, "" before Listen.
func (s *Server) URL() string {
	if addr := s.Addr(); addr != "" {
		return "http://" + addr
	}
	return ""
}

// Close releases hanging requests, stops listening, closes connections and
// waits for handlers to return. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		s.closed = true
		srv, served := s.httpServer, s.served
		s.mu.Unlock()
		if srv != nil {
			_ = srv.Close()
			<-served
		}
		s.inflight.Wait()
	})
}

// SetValid restricts provider to the given credential sets: a login succeeds
// when every key of one set is sent with exactly that value (AmpliFi: as a
// string field; OAuth2: clientId and clientSecret). No sets means any credentials passing the documented checks.
func (s *Server) SetValid(provider string, creds ...map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(provider)
	st.valid = nil
	for _, c := range creds {
		copied := make(map[string]string, len(c))
		for k, v := range c {
			copied[k] = v
		}
		st.valid = append(st.valid, copied)
	}
}

// SetLifetime sets how long provider's tokens live. Zero or negative
// lifetimes issue tokens that are already expired.
func (s *Server) SetLifetime(provider string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state(provider).lifetime = d
}

// SetAMLDataArray makes AML Watcher's answers carry data as an array of
// one object, [{"access_token": ...}], as its response table describes
// data, instead of the object its sample shows. Off by default.
func (s *Server) SetAMLDataArray(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.amlDataArray = on
}

// SetLatency delays each of provider's answers by d (or until the request is
// abandoned).
func (s *Server) SetLatency(provider string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state(provider).latency = d
}

// Hang makes provider's requests block until the client gives up or the
// Server closes; the connection is then dropped without an answer.
func (s *Server) Hang(provider string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state(provider).hang = on
}

// FailNext answers provider's next n requests with status and a
// provider-shaped error body.
func (s *Server) FailNext(provider string, n, status int) {
	s.FailNextWith(provider, n, Failure{Status: status})
}

// FailNextWith answers provider's next n requests with f. Failures queue up
// behind those already scripted.
func (s *Server) FailNextWith(provider string, n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(provider)
	for range n {
		st.next = append(st.next, f)
	}
}

// FailEvery answers every k-th of provider's requests from now on with f
// (k = 2: the 2nd, 4th, ...: half of them). k <= 0 stops it. Requests taken
// by FailNext do not count.
func (s *Server) FailEvery(provider string, k int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(provider)
	st.every, st.everyFail, st.sinceSet = k, f, 0
}

// Attempts counts provider's requests, failed ones included.
func (s *Server) Attempts(provider string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state(provider).attempts
}

// Logins counts provider's tokens issued.
func (s *Server) Logins(provider string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state(provider).logins
}

// LoginsFor counts provider's tokens issued to one identity: the email (AML
// Watcher), the accessKey (partner API), the client id (OAuth2), or for AmpliFi the channel's
// identifying field: userName (internet), uuid (android), deviceId
// (browser), userId (statementGenerator, dicBuilder), transportUserId
// (chat), deviceTag (android_v1, mobile, ios_v1, test).
func (s *Server) LoginsFor(provider, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state(provider).loginsFor[id]
}

// LastToken is the last token provider issued, "" before any.
func (s *Server) LastToken(provider string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state(provider).lastToken
}

// ResetCounters zeroes every provider's counters; scripted faults stay.
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.providers {
		st.attempts, st.logins, st.loginsFor, st.lastToken = 0, 0, map[string]int{}, ""
	}
}

// state returns provider's state; s.mu must be held. Unknown names are a
// mistake in the test, so they panic.
func (s *Server) state(provider string) *providerState {
	st, ok := s.providers[provider]
	if !ok {
		panic(fmt.Sprintf("providertest: unknown provider %q (want one of %q)", provider, Names()))
	}
	return st
}
