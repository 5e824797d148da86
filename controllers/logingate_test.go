package controllers

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/builtin"
	"github.com/tokensync/tokensync/providers/providertest"
)

// in names a TokenRequest of namespace ns.
func in(ns string, n int) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("tr-%d", n)}
}

// gateHarness runs a gate whose logins start only when the test says.
type gateHarness struct {
	g       *loginGate
	clock   *clocktesting.FakeClock
	started map[types.NamespacedName]func() // running, not yet finished
	done    []types.NamespacedName
}

func newGateHarness(limits LoginLimits) *gateHarness {
	h := &gateHarness{clock: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), started: map[types.NamespacedName]func(){}}
	h.g = newLoginGate(limits, h.clock)
	h.g.goFunc = func(who types.NamespacedName, run func()) { h.started[who] = run }
	h.g.start(context.Background(), "", func(who types.NamespacedName) { h.done = append(h.done, who) })
	return h
}

// submit hands over a login of who to endpoint; it "runs" until finish.
func (h *gateHarness) submit(who types.NamespacedName, endpoint string, mustStartBy time.Time) bool {
	return h.g.submit(&loginJob{who: who, endpoint: endpoint, issuer: endpoint, mustStartBy: mustStartBy, run: func(context.Context) {}})
}

func (h *gateHarness) running(who types.NamespacedName) bool { _, ok := h.started[who]; return ok }

func (h *gateHarness) finish(t *testing.T, who types.NamespacedName) {
	t.Helper()
	f, ok := h.started[who]
	if !ok {
		t.Fatalf("%s is not running", who)
	}
	delete(h.started, who)
	f()
}

func TestLoginGateBounds(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointInFlight: 2, PerNamespaceInFlight: 3, TotalInFlight: 4, PerEndpointRate: -1})
	now := time.Time{}
	h.submit(in("a", 0), "https://hangs.example/x", now)
	h.submit(in("a", 1), "https://hangs.example/y", now)
	if !h.running(in("a", 0)) || !h.running(in("a", 1)) {
		t.Fatal("logins to a free host did not start")
	}
	// Host bound: the same host in another spelling waits in the host's line.
	h.submit(in("b", 0), "https://HANGS.example./other-path", now)
	if h.running(in("b", 0)) {
		t.Fatal("a third login to the same host started")
	}
	h.submit(in("a", 2), "https://fine.example", now)
	h.submit(in("a", 3), "https://third.example", now) // namespace a is full
	h.submit(in("b", 1), "https://third.example", now) // total reaches 4
	h.submit(in("c", 0), "https://other.example", now) // total is full
	if !h.running(in("a", 2)) || h.running(in("a", 3)) || !h.running(in("b", 1)) || h.running(in("c", 0)) {
		t.Fatalf("running %v, want a/0, a/1, a/2, b/1", h.started)
	}
	// Asking again while waiting does not queue twice; while running, it is refused.
	h.submit(in("b", 0), "https://hangs.example", now)
	if h.submit(in("a", 0), "https://hangs.example", now) {
		t.Error("a second login of a TokenRequest whose login runs was accepted")
	}
	if len(h.g.jobs) != 7 {
		t.Fatalf("%d jobs, want 7", len(h.g.jobs))
	}

	// a/0 ends: its host's line (b/0) starts; namespace a's line (a/3)
	// now waits for the total, behind c/0.
	h.finish(t, in("a", 0))
	if len(h.done) != 1 || h.done[0] != in("a", 0) {
		t.Fatalf("done %v, want a/tr-0 reconciled", h.done)
	}
	if !h.running(in("b", 0)) || h.running(in("a", 3)) || h.running(in("c", 0)) {
		t.Fatalf("running %v after a/0 ended, want b/0 started and a/3, c/0 waiting", h.started)
	}
	// b/1 ends: the total frees, first come first served: c/0, then a/3.
	h.finish(t, in("b", 1))
	if !h.running(in("c", 0)) || h.running(in("a", 3)) {
		t.Fatalf("running %v, want c/0 before a/3", h.started)
	}
	h.finish(t, in("c", 0))
	if !h.running(in("a", 3)) {
		t.Fatal("a/3 never started")
	}

	// A waiting login no longer needed is dropped; a cancelled one that
	// runs reconciles nothing when it ends.
	h.submit(in("d", 0), "https://hangs.example", now)
	h.g.dropWaiting(in("d", 0))
	h.g.cancel(in("a", 1))
	h.finish(t, in("a", 1))
	if h.running(in("d", 0)) {
		t.Error("a dropped login started")
	}
	if last := h.done[len(h.done)-1]; last == in("a", 1) {
		t.Error("a cancelled login reconciled its TokenRequest")
	}
	for _, who := range []types.NamespacedName{in("a", 2), in("a", 3), in("b", 0)} {
		h.finish(t, who)
	}
	if h.g.total != 0 || len(h.g.namespaces) != 0 || len(h.g.lines) != 0 || len(h.g.jobs) != 0 {
		t.Errorf("gate not empty after every login ended: total %d, namespaces %v, lines %v, jobs %v", h.g.total, h.g.namespaces, h.g.lines, h.g.jobs)
	}
}

// TestLoginGateReplacesStaleWaitingLogin: a login still waiting for an
// issuer the spec no longer names is replaced, not run.
func TestLoginGateReplacesStaleWaitingLogin(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointInFlight: 1, PerNamespaceInFlight: -1, PerEndpointRate: -1})
	h.submit(in("a", 0), "https://p.example", time.Time{})
	h.submit(in("a", 1), "https://p.example", time.Time{})
	if issuer, running, ok := h.g.inFlight(in("a", 1)); !ok || running || issuer != "https://p.example" {
		t.Fatalf("inFlight = %q %v %v", issuer, running, ok)
	}
	h.submit(in("a", 1), "https://q.example", time.Time{})
	if !h.running(in("a", 1)) {
		t.Fatal("the replacement did not start on its own free host")
	}
	if issuer, _, _ := h.g.inFlight(in("a", 1)); issuer != "https://q.example" {
		t.Errorf("issuer %q, want the new one", issuer)
	}
	if l := h.g.lines["host:p.example"]; l != nil {
		t.Errorf("the stale login is still in line (%d)", l.Len())
	}
}

func TestLoginGateRate(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointInFlight: -1, PerNamespaceInFlight: -1, PerEndpointRate: 10, PerEndpointBurst: 5})
	for i := 0; i < 20; i++ {
		h.submit(in("ns", i), "https://p.example", time.Time{})
	}
	if len(h.started) != 5 {
		t.Fatalf("%d logins started at once, want the burst of 5", len(h.started))
	}
	h.clock.Step(100 * time.Millisecond)
	if len(h.started) != 6 {
		t.Fatalf("%d started after 100ms, want 6 (10/s)", len(h.started))
	}
	if h.submit(in("x", 0), "https://other.example", time.Time{}); !h.running(in("x", 0)) {
		t.Fatal("another host limited by this one's rate")
	}
	// A refresh that would otherwise let its token expire goes at once.
	h.submit(in("ns", 98), "https://p.example", h.clock.Now().Add(50*time.Millisecond))
	if !h.running(in("ns", 98)) {
		t.Fatal("an urgent refresh was delayed past its deadline")
	}
	// One with time to spare waits its turn.
	h.submit(in("ns", 97), "https://p.example", h.clock.Now().Add(time.Minute))
	if h.running(in("ns", 97)) {
		t.Fatal("a refresh with time to spare was not delayed")
	}
	h.clock.Step(2 * time.Second)
	if !h.running(in("ns", 97)) || len(h.started) != 23 {
		t.Fatalf("%d started after the tokens came, want all 23", len(h.started))
	}
}

// TestLoginGateNamespacesTakeTurns: one namespace's 200 logins queued for
// a host delay another namespace's one login by at most one turn: it starts
// within the next 2 slots freed (default limits, their rate included).
func TestLoginGateNamespacesTakeTurns(t *testing.T) {
	h := newGateHarness(LoginLimits{})
	const host = "https://p.example"
	for i := range 200 {
		h.submit(in("busy", i), host, time.Time{})
	}
	h.submit(in("quiet", 0), host, time.Time{})
	if len(h.started) != DefaultLoginLimits.PerEndpointInFlight || h.running(in("quiet", 0)) {
		t.Fatalf("%d started, quiet running %v: want the host's %d slots taken by busy", len(h.started), h.running(in("quiet", 0)), DefaultLoginLimits.PerEndpointInFlight)
	}
	next := 0 // the busy login to finish next
	for slot := 1; ; slot++ {
		for !h.running(in("busy", next)) {
			next++
		}
		h.finish(t, in("busy", next))
		h.clock.Step(time.Second) // the host's rate tokens come
		if h.running(in("quiet", 0)) {
			break
		}
		if slot == 2 {
			t.Fatalf("quiet's login did not start within 2 slots freed behind 200 of busy's")
		}
	}
	if n := len(h.started); n != DefaultLoginLimits.PerEndpointInFlight {
		t.Errorf("%d logins running, want the host's %d", n, DefaultLoginLimits.PerEndpointInFlight)
	}
}

// TestLoginGateOrder: the order logins wait in, in each kind of line:
// namespaces take turns in the order they came, and within a namespace
// the soonest expiry goes first, a login without a valid token before any,
// ties by arrival.
func TestLoginGateOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type queued struct {
		who         types.NamespacedName
		mustStartBy time.Time
	}
	for _, tt := range []struct {
		name   string
		limits LoginLimits
		// hold takes the one slot the others then wait for.
		hold   types.NamespacedName
		queued []queued
		want   []types.NamespacedName
	}{
		{name: "host line: namespaces take turns",
			limits: LoginLimits{PerEndpointInFlight: 1, PerNamespaceInFlight: -1, TotalInFlight: -1, PerEndpointRate: -1},
			hold:   in("a", 0),
			queued: []queued{{in("a", 1), time.Time{}}, {in("a", 2), time.Time{}}, {in("a", 3), time.Time{}}, {in("b", 1), time.Time{}}, {in("c", 1), time.Time{}}, {in("b", 2), time.Time{}}},
			want:   []types.NamespacedName{in("a", 1), in("b", 1), in("c", 1), in("a", 2), in("b", 2), in("a", 3)}},
		{name: "host line: soonest expiry first within a namespace",
			limits: LoginLimits{PerEndpointInFlight: 1, PerNamespaceInFlight: -1, TotalInFlight: -1, PerEndpointRate: -1},
			hold:   in("a", 0),
			queued: []queued{{in("a", 1), t0.Add(time.Hour)}, {in("a", 2), t0.Add(10 * time.Minute)}, {in("a", 3), time.Time{}},
				{in("a", 4), t0.Add(10 * time.Minute)}, {in("a", 5), t0.Add(time.Minute)}},
			want: []types.NamespacedName{in("a", 3), in("a", 5), in("a", 2), in("a", 4), in("a", 1)}},
		{name: "total line: turns, and expiry within each namespace",
			limits: LoginLimits{PerEndpointInFlight: -1, PerNamespaceInFlight: -1, TotalInFlight: 1, PerEndpointRate: -1},
			hold:   in("a", 0),
			queued: []queued{{in("a", 1), t0.Add(time.Hour)}, {in("a", 2), t0.Add(time.Minute)}, {in("b", 1), t0.Add(time.Hour)}, {in("b", 2), time.Time{}}},
			want:   []types.NamespacedName{in("a", 2), in("b", 2), in("a", 1), in("b", 1)}},
		{name: "namespace line: soonest expiry first",
			limits: LoginLimits{PerEndpointInFlight: -1, PerNamespaceInFlight: 1, TotalInFlight: -1, PerEndpointRate: -1},
			hold:   in("a", 0),
			queued: []queued{{in("a", 1), t0.Add(time.Hour)}, {in("a", 2), t0.Add(time.Minute)}, {in("a", 3), time.Time{}}},
			want:   []types.NamespacedName{in("a", 3), in("a", 2), in("a", 1)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newGateHarness(tt.limits)
			h.submit(tt.hold, "https://p.example", time.Time{})
			for _, q := range tt.queued {
				h.submit(q.who, fmt.Sprintf("https://p.example/%s", q.who.Name), q.mustStartBy)
			}
			running := tt.hold
			var got []types.NamespacedName
			for range tt.queued {
				h.finish(t, running)
				if len(h.started) != 1 {
					t.Fatalf("%d running after %v, want 1", len(h.started), got)
				}
				for who := range h.started {
					running = who
				}
				got = append(got, running)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("started in the order\n%v, want\n%v", got, tt.want)
			}
			h.finish(t, running)
			if len(h.g.lines) != 0 || len(h.g.jobs) != 0 {
				t.Errorf("gate not empty: lines %v, jobs %v", h.g.lines, h.g.jobs)
			}
		})
	}
}

// TestLoginGateLineForgetsNamespaces: a namespace with no login left in a
// line leaves its turns, so a line remembers only namespaces that wait; a
// login dropped or replaced while waiting leaves its place.
func TestLoginGateLineForgetsNamespaces(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointInFlight: 1, PerNamespaceInFlight: -1, PerEndpointRate: -1})
	const host = "https://p.example"
	h.submit(in("hold", 0), host, time.Time{})
	for i := range 1000 {
		h.submit(in(fmt.Sprintf("ns-%d", i), 0), host, time.Time{})
	}
	line := h.g.lines["host:p.example"]
	if line.Len() != 1000 || len(line.byNamespace) != 1000 || line.turns.Len() != 1000 {
		t.Fatalf("line of %d logins, %d namespaces, %d turns; want 1000 each", line.Len(), len(line.byNamespace), line.turns.Len())
	}
	for i := range 500 {
		h.g.dropWaiting(in(fmt.Sprintf("ns-%d", i), 0))
	}
	h.submit(in("ns-500", 0), "https://elsewhere.example", time.Time{}) // replaced: goes elsewhere
	if line.Len() != 499 || len(line.byNamespace) != 499 || line.turns.Len() != 499 {
		t.Fatalf("line of %d logins, %d namespaces, %d turns after 501 left; want 499 each", line.Len(), len(line.byNamespace), line.turns.Len())
	}
	if !h.running(in("ns-500", 0)) {
		t.Error("the replacement did not start on its free host")
	}
	// The turn passes on in order past the namespaces that left.
	h.finish(t, in("hold", 0))
	if !h.running(in("ns-501", 0)) {
		t.Fatalf("running %v, want ns-501 next", h.started)
	}
}

// TestLoginGateForgetsIdleHosts: a host is remembered while a login is in
// flight or waits for it and until its bucket is full again, not forever.
func TestLoginGateForgetsIdleHosts(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointInFlight: 1, PerEndpointRate: 10, PerEndpointBurst: 5})
	for i := 0; i < 1000; i++ {
		h.submit(in("ns", i), fmt.Sprintf("https://host-%d.example", i), time.Time{})
		h.finish(t, in("ns", i))
	}
	h.submit(in("busy", 0), "https://busy.example", time.Time{})
	h.submit(in("busy", 1), "https://busy.example", time.Time{}) // waits in line
	if len(h.g.hosts) != 1001 {
		t.Fatalf("%d hosts, want 1001", len(h.g.hosts))
	}
	h.g.sweep(h.clock.Now())
	if len(h.g.hosts) != 1001 {
		t.Errorf("%d hosts after a sweep right away, want 1001: their buckets are not full yet", len(h.g.hosts))
	}
	h.g.sweep(h.clock.Now().Add(time.Second))
	if len(h.g.hosts) != 1 || h.g.hosts["busy.example"] == nil {
		t.Errorf("hosts after the buckets filled: %d, want only busy.example", len(h.g.hosts))
	}
}

func TestEndpointHost(t *testing.T) {
	for _, tt := range []struct{ endpoint, want string }{
		{"https://Partner.Example.COM/login", "partner.example.com"},
		{"https://partner.example.com./x", "partner.example.com"},
		{"https://partner.example.com:443", "partner.example.com"},
		{"http://partner.example.com:80/a", "partner.example.com"},
		{"https://partner.example.com:8443", "partner.example.com:8443"},
		{"http://partner.example.com:443", "partner.example.com:443"},
		{"https://[2001:DB8::1]:443/x", "[2001:db8::1]"},
		{"https://[2001:db8::1]:8443", "[2001:db8::1]:8443"},
		{"https://127.0.0.1:9000", "127.0.0.1:9000"},
	} {
		if got := endpointHost(tt.endpoint); got != tt.want {
			t.Errorf("endpointHost(%q) = %q, want %q", tt.endpoint, got, tt.want)
		}
	}
}

// TestHangingEndpointsDoNotStarveOtherTenants: three namespaces, each with
// two endpoints that accept connections and never answer, hold as many
// logins as their bounds allow (4 per host, 8 per namespace: 24, more than
// the 16 workers); a fourth namespace's new TokenRequest is Ready within
// 5 s all the same, since logins run off the workers.
func TestHangingEndpointsDoNotStarveOtherTenants(t *testing.T) {
	t.Parallel()
	var namespaces []string
	for range 4 {
		namespaces = append(namespaces, newNamespace(t))
	}
	healthy := providertest.Start(t)
	healthy.SetValid(providertest.Partner, partnerCreds)
	startManager(t, managerOptions{namespaces: namespaces, workers: 16, // the production defaults
		providers: builtin.NewRegistry(providers.Options{Timeout: 30 * time.Second})})

	var hanging []*hangingListener
	for _, ns := range namespaces[:3] {
		n := &env{t: t, ns: ns, fake: healthy}
		n.createSecret("creds", partnerCreds)
		for h := range 2 {
			l := newHangingListener(t)
			hanging = append(hanging, l)
			for i := range 12 {
				n.createTokenRequest(fmt.Sprintf("hangs-%d-%d", h, i), providertest.Partner, "creds", withEndpoint(l.url))
			}
		}
	}
	held := func() (open, most int) {
		for _, l := range hanging {
			o, m := l.counts()
			open, most = open+o, max(most, m)
		}
		return open, most
	}
	want := 3 * DefaultLoginLimits.PerNamespaceInFlight
	eventually(t, readyTimeout, func() error {
		if open, _ := held(); open < want {
			return fmt.Errorf("%d logins hanging, want %d", open, want)
		}
		return nil
	})

	q := &env{t: t, ns: namespaces[3], fake: healthy}
	q.createSecret("creds", partnerCreds)
	start := time.Now()
	q.createTokenRequest("fine", providertest.Partner, "creds")
	q.waitReady("fine")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a new TokenRequest of a fourth namespace took %s to become Ready while three namespaces' endpoints hang", took.Round(100*time.Millisecond))
	}
	if open, most := held(); open > want || most > DefaultLoginLimits.PerEndpointInFlight {
		t.Errorf("%d logins hanging (at most %d on one host), want at most %d, %d per host", open, most, want, DefaultLoginLimits.PerEndpointInFlight)
	}
}

// hangingListener accepts connections and never answers.
type hangingListener struct {
	url string

	mu         sync.Mutex
	open, most int
}

func newHangingListener(t *testing.T) *hangingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangingListener{url: "http://" + ln.Addr().String()}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			h.mu.Lock()
			h.open++
			h.most = max(h.most, h.open)
			h.mu.Unlock()
			go func() {
				// Read until the client gives up; never write.
				_, _ = io.Copy(io.Discard, c)
				h.mu.Lock()
				h.open--
				h.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return h
}

// counts returns the connections open now and the most open at once.
func (h *hangingListener) counts() (open, most int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.open, h.most
}
