// Command fakeproviders serves the fakes of the login providers
// (providers/providertest: every built-in provider with a login of its own)
// on one loopback URL, so that a local operator can log in without the real
// ones.
// make demo runs it; it is also handy for trying the operator by hand:
//
//	fakeproviders --addr 127.0.0.1:18080 --lifetime 1m \
//	  --valid 'partner:accessKey=demo-access-key,secret=demo-secret'
//
// Every TokenRequest's spec.endpoint is then http://127.0.0.1:18080, whatever
// its provider (for oauth2 the token URL, http://127.0.0.1:18080/oauth/token).
// Each request is logged with its provider and status, never
// with its body (it carries credentials).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tokensync/tokensync/providers/providertest"
)

var providerNames = providertest.Names()

// providerOfPath names the provider each login path belongs to.
func providerOfPath() map[string]string {
	of := map[string]string{}
	for _, f := range providertest.Fakes() {
		if f.Served() {
			of[f.Path] = f.Name
		}
	}
	return of
}

// credentialSets collects repeated --valid flags, by provider.
type credentialSets map[string][]map[string]string

func (c credentialSets) String() string { return "" }

func (c credentialSets) Set(value string) error {
	provider, set, err := parseValid(value)
	if err != nil {
		return err
	}
	c[provider] = append(c[provider], set)
	return nil
}

// parseValid reads "provider:key=value,key=value" into one credential set.
func parseValid(value string) (string, map[string]string, error) {
	provider, pairs, ok := strings.Cut(value, ":")
	if !ok || !isProvider(provider) {
		return "", nil, fmt.Errorf("want provider:key=value,... with provider one of %s, got %q", strings.Join(providerNames, ", "), value)
	}
	set := map[string]string{}
	for pair := range strings.SplitSeq(pairs, ",") {
		key, val, ok := strings.Cut(pair, "=")
		if !ok || key == "" {
			return "", nil, fmt.Errorf("%s: want key=value, got %q", provider, pair)
		}
		set[key] = val
	}
	return provider, set, nil
}

func isProvider(name string) bool {
	for _, p := range providerNames {
		if p == name {
			return true
		}
	}
	return false
}

func main() {
	var (
		addr      = flag.String("addr", "127.0.0.1:0", "Address to listen on; port 0 picks a free one.")
		urlFile   = flag.String("url-file", "", "Once listening, write the base URL to this file (for scripts).")
		lifetime  = flag.Duration("lifetime", time.Minute, "Lifetime of every provider's tokens.")
		failEvery = flag.Int("fail-every", 0, "Answer every n-th login of each provider with 503 (0: never), to watch retries.")
		valid     = credentialSets{}
		lifetimes = map[string]*time.Duration{}
	)
	for _, p := range providerNames {
		lifetimes[p] = flag.Duration(p+"-lifetime", 0, "Lifetime of "+p+" tokens (default: --lifetime).")
	}
	flag.Var(valid, "valid", "Accept only these credentials for a provider, as provider:key=value,key=value (repeatable; "+
		"AmpliFi keys are fields of its login body, e.g. amplifi:channel=internet,userName=u,password=p). "+
		"A provider without --valid accepts any well-formed credentials.")
	flag.Parse()
	log.SetFlags(log.Ldate | log.Ltime | log.Lmicroseconds)

	if err := run(*addr, *urlFile, *lifetime, lifetimes, valid, *failEvery); err != nil {
		log.Fatalf("fakeproviders: %v", err)
	}
}

func run(addr, urlFile string, lifetime time.Duration, lifetimes map[string]*time.Duration, valid credentialSets, failEvery int) error {
	fake := providertest.New()
	for _, p := range providerNames {
		d := lifetime
		if *lifetimes[p] > 0 {
			d = *lifetimes[p]
		}
		fake.SetLifetime(p, d)
		fake.SetValid(p, valid[p]...)
		if failEvery > 0 {
			fake.FailEvery(p, failEvery, providertest.Failure{Status: http.StatusServiceUnavailable})
		}
		accepts := "any credentials"
		if len(valid[p]) > 0 {
			accepts = fmt.Sprintf("%d credential set(s)", len(valid[p]))
		}
		log.Printf("%s: tokens live %s, accepting %s", p, d, accepts)
	}

	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	url := "http://" + listener.Addr().String()
	srv := &http.Server{Handler: logRequests(fake.Handler(), providerOfPath()), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(listener) }()
	var routes []string
	for _, f := range providertest.Fakes() {
		if f.Served() {
			routes = append(routes, fmt.Sprintf("%s (%s %s)", f.Name, f.Method, f.Path))
		}
	}
	log.Printf("serving %s on %s", strings.Join(routes, ", "), url)
	if urlFile != "" {
		if err := writeFileAtomic(urlFile, url+"\n"); err != nil {
			_ = srv.Close()
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Printf("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	fake.Close()
	if errors.Is(err, context.DeadlineExceeded) {
		return srv.Close()
	}
	return err
}

// writeFileAtomic writes content so that a reader never sees half of it.
func writeFileAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection (the fake's
// reset-connection fault hijacks it).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	return hj.Hijack()
}

func logRequests(next http.Handler, providerOfPath map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		provider := providerOfPath[r.URL.Path]
		if provider == "" {
			provider = "-"
		}
		log.Printf("%-7s %s %s -> %d (%s)", provider, r.Method, r.URL.Path, rec.status, time.Since(start).Round(time.Microsecond))
	})
}
