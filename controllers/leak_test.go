package controllers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/tokensync/tokensync/internal/endpointpolicy"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(entries)
}

// TestNoLeaksAcrossFailingLogins: 200 logins through the operator's HTTP
// client (the one providers build, with DialControl) against the fakes of
// every built-in provider in turn (configured by their settings), with
// failures of every kind mixed in (5xx with Retry-After, connection resets,
// hangs past the timeout, malformed, huge, empty and redirecting answers).
// Afterwards, once the fake has closed its side of every connection the
// clients keep alive, goroutines and file descriptors return to where they
// were.
//
// Not parallel: counts are process-wide, and sequential tests run before
// the parallel ones start.
func TestNoLeaksAcrossFailingLogins(t *testing.T) {
	if testing.Short() {
		t.Skip("200 logins")
	}
	fake := providertest.Start(t)
	registry := builtin.NewRegistry(providers.Options{Timeout: 400 * time.Millisecond, DialControl: policyDialControl(&endpointpolicy.Policy{Rules: endpointpolicy.Rules{AllowLoopback: true}}, nil)})
	// Each provider's login, and the fake whose faults it meets (its own,
	// or the one it logs in to).
	type target struct {
		login    providers.Provider
		endpoint string
		creds    providers.Credentials
		fake     string
	}
	var targets []target
	for _, f := range providertest.Fakes() {
		tg := target{login: registry[f.Name].Provider, endpoint: f.Endpoint(fake.URL()), creds: providers.Credentials{}, fake: f.Name}
		if !f.Served() {
			tg.fake = f.Via
		}
		if c, ok := tg.login.(providers.Configurable); ok {
			var err error
			if tg.login, err = c.WithSettings([]byte(f.Settings)); err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
		}
		for k, v := range credsFor(f.Name) {
			tg.creds[k] = []byte(v)
		}
		targets = append(targets, tg)
	}
	runtime.GC()
	baseGoroutines, baseFDs := runtime.NumGoroutine(), openFDs(t)

	ctx := context.Background()
	kinds := map[providers.ErrorKind]int{}
	var ok, peakGoroutines int
	for i := range 200 {
		tg := targets[i%len(targets)]
		p := tg.fake
		hang := false
		switch i % 10 {
		case 3:
			fake.FailNextWith(p, 1, providertest.Failure{Status: http.StatusServiceUnavailable, RetryAfter: "1"})
		case 4:
			fake.FailNextWith(p, 1, providertest.Failure{Fault: providertest.ResetConnection})
		case 5:
			hang = true
			fake.Hang(p, true)
		case 6:
			fake.FailNextWith(p, 1, providertest.Failure{Fault: providertest.HugeBody})
		case 7:
			fake.FailNextWith(p, 1, providertest.Failure{Fault: providertest.NotJSON})
		case 8:
			fault := providertest.EmptyBody
			if i%20 == 8 {
				fault = providertest.Redirect
			}
			fake.FailNextWith(p, 1, providertest.Failure{Fault: fault})
		}
		_, err := tg.login.Login(ctx, tg.endpoint, tg.creds)
		if hang {
			fake.Hang(p, false)
		}
		if err != nil {
			kinds[providers.KindOf(err)]++
		} else {
			ok++
		}
		peakGoroutines = max(peakGoroutines, runtime.NumGoroutine())
	}
	// 6 in 10 fail: 503, reset and hang are transient, the rest invalid
	// answers, though on a loaded machine the short client timeout may cut
	// a slow invalid answer first (then it is transient too).
	if ok != 80 || kinds[providers.ProviderUnavailable]+kinds[providers.InvalidResponse] != 120 ||
		kinds[providers.ProviderUnavailable] < 60 {
		t.Fatalf("%d logins succeeded, failures by kind %v; want 80, and 120 ProviderUnavailable or InvalidResponse (at least 60 ProviderUnavailable)", ok, kinds)
	}

	// The providers' clients are out of reach, so their idle keep-alive
	// connections are closed from the fake's side: what then remains (the
	// fake's own listener is gone too) is a leak.
	fake.Close()
	var goroutines, fds int
	eventually(t, 30*time.Second, func() error {
		runtime.GC()
		goroutines, fds = runtime.NumGoroutine(), openFDs(t)
		if goroutines > baseGoroutines+3 || fds > baseFDs+2 {
			return fmt.Errorf("%d goroutines (baseline %d, peak %d) and %d file descriptors (baseline %d) after 200 logins",
				goroutines, baseGoroutines, peakGoroutines, fds, baseFDs)
		}
		return nil
	})
	t.Logf("goroutines: baseline %d, peak %d, after %d; file descriptors: baseline %d, after %d", baseGoroutines, peakGoroutines, goroutines, baseFDs, fds)
}
