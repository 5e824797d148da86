package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// secretWatch samples a target Secret until stopped and remembers whether
// it was ever missing or empty, and every token it held.
type secretWatch struct {
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	lost   bool
	tokens map[string]bool
}

func watchSecret(e *env, name string) *secretWatch {
	w := &secretWatch{stop: make(chan struct{}), done: make(chan struct{}), tokens: map[string]bool{}}
	go func() {
		defer close(w.done)
		for {
			tok := e.token(name)
			w.mu.Lock()
			if tok == "" {
				w.lost = true
			} else {
				w.tokens[tok] = true
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	e.t.Cleanup(func() { w.finish() })
	return w
}

// finish stops sampling; it returns whether the Secret was ever without a
// token, and how many tokens it held.
func (w *secretWatch) finish() (lost bool, tokens int) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost, len(w.tokens)
}

// TestManagerStoppedMidRefresh: the manager stops while a refresh is in
// flight (the provider holds the request). The Secret keeps its token
// throughout, the aborted attempt is not recorded as a failure, and the new
// manager logs in exactly once: the only extra request is the one that was
// in flight.
func TestManagerStoppedMidRefresh(t *testing.T) {
	t.Parallel()
	// A client timeout far beyond the test: only the stop can end the request.
	e := newEnvWith(t, func(_ *env, r *TokenRequestReconciler) {
		r.Providers = builtin.NewRegistry(providers.Options{Timeout: 5 * time.Minute})
	})
	e.createSecret("creds", partnerCreds)
	e.createTokenRequest("inflight", providertest.Partner, "creds")
	e.waitReady("inflight")
	first := e.token("inflight")
	watch := watchSecret(e, "inflight")

	e.fake.Hang(providertest.Partner, true)
	e.forceRefresh("inflight", "during-stop")
	eventually(t, readyTimeout, func() error {
		if n := e.fake.Attempts(providertest.Partner); n != 2 {
			return fmt.Errorf("%d requests, want the refresh in flight", n)
		}
		return nil
	})
	e.stop()
	if tr := e.tokenRequest("inflight"); tr.Status.FailedAttempts != 0 || tr.Status.LastForceRefresh == "during-stop" {
		t.Errorf("the aborted refresh was recorded: failedAttempts %d, lastForceRefresh %q", tr.Status.FailedAttempts, tr.Status.LastForceRefresh)
	}
	e.fake.Hang(providertest.Partner, false)

	e.start()
	eventually(t, readyTimeout, func() error {
		tr := e.tokenRequest("inflight")
		if tr.Status.LastForceRefresh != "during-stop" || e.token("inflight") == first {
			return fmt.Errorf("the refresh was not redone: lastForceRefresh %q", tr.Status.LastForceRefresh)
		}
		return nil
	})
	e.waitReady("inflight")
	consistently(t, 2*time.Second, func() error {
		if a, l := e.fake.Attempts(providertest.Partner), e.fake.Logins(providertest.Partner); a != 3 || l != 2 {
			return fmt.Errorf("%d requests and %d logins, want 3 (first, in flight, redone) and 2", a, l)
		}
		return nil
	})
	if lost, tokens := watch.finish(); lost || tokens != 2 {
		t.Errorf("the Secret was without a token at some point: %v; it held %d tokens, want 2", lost, tokens)
	}
}

// TestLeaderElectionFailover: two managers share a Lease. Only the leader
// logs in; when it stops (releasing the Lease) the other takes over without
// a single login for the tokens that are still valid, and serves new
// TokenRequests.
func TestLeaderElectionFailover(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	fake := providertest.Start(t)
	e := &env{t: t, ns: ns, fake: fake}
	leaseID := "tokensync-" + ns

	var loginsA, loginsB atomic.Int32
	mgrA, _, stopA := startManager(t, managerOptions{namespaces: []string{ns}, leaderID: leaseID,
		providers: countingProviders(builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second}), &loginsA)})
	select {
	case <-mgrA.Elected():
	case <-time.After(readyTimeout):
		t.Fatal("the first manager was not elected")
	}
	mgrB, _, _ := startManager(t, managerOptions{namespaces: []string{ns}, leaderID: leaseID,
		providers: countingProviders(builtin.NewRegistry(providers.Options{Timeout: 5 * time.Second}), &loginsB)})

	e.createSecret("creds", partnerCreds)
	names := []string{"a", "b", "c"}
	for _, n := range names {
		e.createTokenRequest(n, providertest.Partner, "creds")
	}
	versions := map[string]string{}
	statuses := map[string]string{}
	for _, n := range names {
		tr := e.waitReady(n)
		b, _ := json.Marshal(tr.Status)
		statuses[n] = string(b)
		s, _ := e.secret(n)
		versions[n] = s.ResourceVersion + "/" + tr.ResourceVersion
	}
	select {
	case <-mgrB.Elected():
		t.Fatal("both managers are leaders")
	default:
	}
	if a, b := loginsA.Load(), loginsB.Load(); a != 3 || b != 0 {
		t.Fatalf("logins: leader %d, follower %d; want 3 and 0", a, b)
	}

	stopA()
	select {
	case <-mgrB.Elected():
	case <-time.After(readyTimeout):
		t.Fatal("the second manager did not take over")
	}
	// A new TokenRequest becoming Ready shows the new leader at work; its
	// queue started with the three others.
	e.createTokenRequest("d", providertest.Partner, "creds")
	e.waitReady("d")
	consistently(t, 2*time.Second, func() error {
		if a, b := loginsA.Load(), loginsB.Load(); a != 3 || b != 1 {
			return fmt.Errorf("logins: old leader %d, new leader %d; want 3 and 1 (only the new TokenRequest)", a, b)
		}
		return nil
	})
	if n := fake.Logins(providertest.Partner); n != 4 {
		t.Errorf("%d logins at the provider, want 4", n)
	}
	for _, n := range names {
		tr := e.tokenRequest(n)
		s, _ := e.secret(n)
		if v := s.ResourceVersion + "/" + tr.ResourceVersion; v != versions[n] {
			b, _ := json.Marshal(tr.Status)
			t.Errorf("%s: Secret or status written after the failover (%s -> %s)\n%s\n%s", n, versions[n], v, statuses[n], b)
		}
		if c := readyCondition(tr); c.Reason != tokensyncv1alpha1.ReasonTokenIssued {
			t.Errorf("%s: %s", n, c.Reason)
		}
	}
}

// countingProviders wraps every provider of a registry to count its logins.
func countingProviders(reg providers.Registry, n *atomic.Int32) providers.Registry {
	out := providers.Registry{}
	for name, r := range reg {
		r.Provider = countedProvider{inner: r.Provider, n: n}
		out[name] = r
	}
	return out
}

type countedProvider struct {
	inner providers.Provider
	n     *atomic.Int32
}

func (p countedProvider) Login(ctx context.Context, endpoint string, creds providers.Credentials) (*providers.Token, error) {
	p.n.Add(1)
	return p.inner.Login(ctx, endpoint, creds)
}

// Validate keeps the precheck of the wrapped provider.
func (p countedProvider) Validate(creds providers.Credentials) error {
	if v, ok := p.inner.(providers.Validator); ok {
		return v.Validate(creds)
	}
	return nil
}
