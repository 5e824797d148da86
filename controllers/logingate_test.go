package controllers

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// in names a TokenRequest of namespace ns.
func in(ns string, n int) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("tr-%d", n)}
}

func TestLoginGateInFlight(t *testing.T) {
	g := newLoginGate(LoginLimits{PerEndpointInFlight: 2, PerNamespaceInFlight: 3, PerEndpointRate: -1})
	var woken []types.NamespacedName
	g.wake = func(who types.NamespacedName) { woken = append(woken, who) }
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var releases []func()
	for i := 0; i < 2; i++ {
		rel, _ := g.admit(in("a", i), "https://hangs.example/x", now, time.Time{})
		if rel == nil {
			t.Fatalf("login %d to a free host refused", i+1)
		}
		releases = append(releases, rel)
	}
	if rel, wait := g.admit(in("b", 0), "https://HANGS.example/other-path", now, time.Time{}); rel != nil || wait != slotRetry {
		t.Fatalf("a third login to the same host admitted (wait %s)", wait)
	}
	// Another host from the same namespace is admitted, up to the namespace bound.
	if rel, _ := g.admit(in("a", 2), "https://fine.example", now, time.Time{}); rel == nil {
		t.Fatal("another host refused")
	}
	if rel, _ := g.admit(in("a", 3), "https://third.example", now, time.Time{}); rel != nil {
		t.Fatal("a fourth login for namespace a admitted")
	}
	if rel, _ := g.admit(in("b", 1), "https://third.example", now, time.Time{}); rel == nil {
		t.Fatal("namespace b refused because of namespace a")
	}
	// Asking again while in line does not queue twice.
	g.admit(in("b", 0), "https://hangs.example", now, time.Time{})

	// A slot freed wakes the first in line for the host, and for the namespace.
	releases[0]()
	releases[0]() // a second release is a no-op
	if len(woken) != 2 || woken[0] != in("b", 0) || woken[1] != in("a", 3) {
		t.Fatalf("woken %v, want b/tr-0 (host) and a/tr-3 (namespace)", woken)
	}
	if rel, _ := g.admit(in("b", 0), "https://hangs.example", now, time.Time{}); rel == nil {
		t.Fatal("the TokenRequest woken for a freed slot did not get it")
	}
	if rel, _ := g.admit(in("c", 0), "https://hangs.example", now, time.Time{}); rel != nil {
		t.Fatal("a double release freed two slots")
	}
	if len(g.inLine) != 1 || len(g.waiting) != 1 {
		t.Errorf("line state %v %v, want only c/tr-0 waiting", g.inLine, g.waiting)
	}
}

func TestLoginGateRate(t *testing.T) {
	g := newLoginGate(LoginLimits{PerEndpointInFlight: -1, PerNamespaceInFlight: -1, PerEndpointRate: 10, PerEndpointBurst: 5})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	admitted := 0
	var waits []time.Duration
	for i := 0; i < 20; i++ {
		if rel, wait := g.admit(in("ns", i), "https://p.example", now, time.Time{}); rel != nil {
			admitted++
			rel()
		} else {
			waits = append(waits, wait)
		}
	}
	if admitted != 5 {
		t.Fatalf("%d logins admitted at once, want the burst of 5", admitted)
	}
	if len(waits) == 0 || waits[0] <= 0 || waits[0] > 100*time.Millisecond {
		t.Fatalf("waits %v, want about 100ms (10/s)", waits)
	}
	// Refused logins gave their tokens back: one second later, the bucket is full again.
	now = now.Add(time.Second)
	admitted = 0
	for i := 0; i < 20; i++ {
		if rel, _ := g.admit(in("ns", i), "https://p.example", now, time.Time{}); rel != nil {
			admitted++
			rel()
		}
	}
	if admitted != 5 {
		t.Fatalf("%d admitted after a second, want 5", admitted)
	}
	if rel, _ := g.admit(in("ns", 99), "https://other.example", now, time.Time{}); rel == nil {
		t.Fatal("another host limited by this one's rate")
	}
	// A refresh that would otherwise let its token expire goes at once.
	if rel, _ := g.admit(in("ns", 98), "https://p.example", now, now.Add(50*time.Millisecond)); rel == nil {
		t.Fatal("an urgent refresh was delayed past its deadline")
	}
	// One that can wait, waits.
	if rel, _ := g.admit(in("ns", 97), "https://p.example", now, now.Add(time.Minute)); rel != nil {
		t.Fatal("a refresh with time to spare was not delayed")
	}
}

// TestHangingEndpointDoesNotStallOtherTenants: a namespace whose endpoint
// accepts connections and never answers, with 60 TokenRequests, holds at
// most a few of the 16 workers: a TokenRequest in another namespace becomes
// Ready within seconds, and the hanging logins stay bounded.
func TestHangingEndpointDoesNotStallOtherTenants(t *testing.T) {
	t.Parallel()
	noisy, quiet := newNamespace(t), newNamespace(t)
	hanging, healthy := providertest.Start(t), providertest.Start(t)
	hanging.Hang(providertest.Partner, true)
	startManager(t, managerOptions{namespaces: []string{noisy, quiet}, workers: 16, // the production defaults
		providers: builtin.NewRegistry(providers.Options{Timeout: 30 * time.Second})})

	n := &env{t: t, ns: noisy, fake: hanging}
	n.createSecret("creds", partnerCreds)
	for i := 0; i < 60; i++ {
		n.createTokenRequest(fmt.Sprintf("hangs-%d", i), providertest.Partner, "creds")
	}
	eventually(t, readyTimeout, func() error {
		if got := hanging.Attempts(providertest.Partner); got < DefaultLoginLimits.PerEndpointInFlight {
			return fmt.Errorf("%d logins hanging", got)
		}
		return nil
	})

	q := &env{t: t, ns: quiet, fake: healthy}
	q.createSecret("creds", partnerCreds)
	start := time.Now()
	q.createTokenRequest("fine", providertest.Partner, "creds")
	q.waitReady("fine")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a TokenRequest of a quiet namespace took %s to become Ready while another's endpoint hangs", took.Round(time.Second))
	}
	if got := hanging.Attempts(providertest.Partner); got > DefaultLoginLimits.PerEndpointInFlight {
		t.Errorf("%d logins sent to the hanging endpoint within its timeout, want at most %d in flight", got, DefaultLoginLimits.PerEndpointInFlight)
	}
}
