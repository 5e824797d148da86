package controllers

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
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
	// ends are what the logins' ends say of their hosts (finishWith).
	ends map[types.NamespacedName]loginEnd
}

func newGateHarness(limits LoginLimits) *gateHarness {
	h := &gateHarness{clock: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), started: map[types.NamespacedName]func(){},
		ends: map[types.NamespacedName]loginEnd{}}
	h.g = newLoginGate(limits, h.clock)
	h.g.jitter = func() float64 { return 0 }
	h.g.goFunc = func(who types.NamespacedName, run func()) { h.started[who] = run }
	h.g.start(context.Background(), "", func(who types.NamespacedName) { h.done = append(h.done, who) })
	return h
}

// submit hands over a login of who to endpoint; it "runs" until finish.
func (h *gateHarness) submit(who types.NamespacedName, endpoint string, mustStartBy time.Time) bool {
	return h.submitJob(&loginJob{who: who, endpoint: endpoint, issuer: endpoint, mustStartBy: mustStartBy})
}

// submitJob hands over job, whose end says what finishWith tells.
func (h *gateHarness) submitJob(job *loginJob) bool {
	who := job.who
	job.run = func(context.Context) loginEnd { return h.ends[who] }
	return h.g.submit(job)
}

func (h *gateHarness) running(who types.NamespacedName) bool { _, ok := h.started[who]; return ok }

func (h *gateHarness) finish(t *testing.T, who types.NamespacedName) {
	t.Helper()
	h.finishWith(t, who, loginEnd{outcome: hostAnswered})
}

// finishWith ends who's login with end.
func (h *gateHarness) finishWith(t *testing.T, who types.NamespacedName, end loginEnd) {
	t.Helper()
	f, ok := h.started[who]
	if !ok {
		t.Fatalf("%s is not running", who)
	}
	delete(h.started, who)
	h.ends[who] = end
	f()
}

// runningNow lists the logins running, sorted.
func (h *gateHarness) runningNow() []string {
	var names []string
	for who := range h.started {
		names = append(names, who.String())
	}
	sort.Strings(names)
	return names
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
	if l, ok := h.g.inFlight(in("a", 1)); !ok || l.running || l.issuer != "https://p.example" {
		t.Fatalf("inFlight = %+v %v", l, ok)
	}
	h.submit(in("a", 1), "https://q.example", time.Time{})
	if !h.running(in("a", 1)) {
		t.Fatal("the replacement did not start on its own free host")
	}
	if l, _ := h.g.inFlight(in("a", 1)); l.issuer != "https://q.example" {
		t.Errorf("issuer %q, want the new one", l.issuer)
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

var (
	unavailableEnd = loginEnd{outcome: hostUnavailable, credentials: "fp"}
	answeredEnd    = loginEnd{outcome: hostAnswered}
)

// downHost marks endpoint's host down: two TokenRequests' logins fail as
// unavailable.
func (h *gateHarness) downHost(t *testing.T, endpoint string) {
	t.Helper()
	for i := range 2 {
		who := in("failed", i)
		h.submit(who, endpoint, time.Time{})
		h.finishWith(t, who, unavailableEnd)
	}
	if !h.g.isDown(endpointHost(endpoint)) {
		t.Fatal("the host is not down after two TokenRequests' logins failed as unavailable")
	}
}

// TestLoginGateHostDown: while a host is down its logins wait in its line;
// it is probed with one of them at a time, namespaces in turn, on its
// backoff; the probe that answers brings it up and starts the others.
// Other hosts are not touched.
func TestLoginGateHostDown(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointRate: -1})
	t0 := h.clock.Now()
	const endpoint = "https://p.example"
	h.downHost(t, endpoint)
	for _, who := range []types.NamespacedName{in("a", 1), in("a", 2), in("a", 3), in("b", 1)} {
		h.submit(who, endpoint, time.Time{})
	}
	if running := h.runningNow(); len(running) != 0 {
		t.Fatalf("running %v while the host is down", running)
	}
	if l, ok := h.g.inFlight(in("a", 1)); !ok || !l.waitsOnHost || l.running {
		t.Errorf("inFlight = %+v, %v: want waiting on the host", l, ok)
	}
	if v := h.g.host(endpoint, t0); !v.Down || !v.NextProbe.Equal(t0.Add(5*time.Second)) || v.Name != "p.example" {
		t.Errorf("host = %+v, want down, next probe at +5s", v)
	}
	h.submit(in("x", 1), "https://q.example", time.Time{})
	if !h.running(in("x", 1)) {
		t.Error("a login to another host waited")
	}
	h.finish(t, in("x", 1))

	// Probes: one at a time, on the backoff, namespaces in turn.
	h.clock.Step(5*time.Second - time.Millisecond)
	if running := h.runningNow(); len(running) != 0 {
		t.Fatalf("running %v before the first probe's time", running)
	}
	h.clock.Step(time.Millisecond)
	if running := h.runningNow(); len(running) != 1 || !h.running(in("a", 1)) {
		t.Fatalf("running %v at the first probe, want a/tr-1", running)
	}
	if v := h.g.host(endpoint, h.clock.Now()); !v.Probing {
		t.Errorf("host = %+v, want a probe under way", v)
	}
	h.clock.Step(2 * time.Second) // the probe takes 2 s
	h.finishWith(t, in("a", 1), unavailableEnd)
	if v := h.g.host(endpoint, h.clock.Now()); !v.NextProbe.Equal(t0.Add(12 * time.Second)) {
		t.Errorf("next probe at +%s, want +12s (5 s after the failed probe ended: the host's first minute down)", v.NextProbe.Sub(t0))
	}
	h.clock.Step(5 * time.Second)
	if running := h.runningNow(); len(running) != 1 || !h.running(in("b", 1)) {
		t.Fatalf("running %v at the second probe, want b/tr-1: namespaces take turns", running)
	}
	h.finishWith(t, in("b", 1), answeredEnd)
	if h.g.isDown("p.example") {
		t.Fatal("still down after the probe answered")
	}
	if running := h.runningNow(); len(running) != 2 || !h.running(in("a", 2)) || !h.running(in("a", 3)) {
		t.Fatalf("running %v after the host came up, want every login that waited", running)
	}
	if n := len(h.done); n != 5 {
		t.Errorf("%d logins' ends reconciled their TokenRequests, want 5: the 2 that failed, x's and the 2 probes", n)
	}
}

// TestLoginGateProbeAsked: a login asked for by a force-refresh or a
// credentials change is the down host's next probe, ahead of the line.
func TestLoginGateProbeAsked(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointRate: -1})
	const endpoint = "https://p.example"
	h.downHost(t, endpoint)
	h.submit(in("a", 1), endpoint, time.Time{})
	h.submit(in("b", 1), endpoint, time.Time{})
	h.submitJob(&loginJob{who: in("c", 1), endpoint: endpoint, issuer: endpoint, nextProbe: true})
	if l, _ := h.g.inFlight(in("c", 1)); !l.nextProbe || !l.waitsOnHost {
		t.Errorf("inFlight = %+v, want waiting as the next probe", l)
	}
	h.clock.Step(5 * time.Second)
	if running := h.runningNow(); len(running) != 1 || !h.running(in("c", 1)) {
		t.Fatalf("running %v, want c/tr-1, asked to be the next probe", running)
	}
	h.finishWith(t, in("c", 1), unavailableEnd)
	h.clock.Step(10 * time.Second)
	if running := h.runningNow(); len(running) != 1 || !h.running(in("a", 1)) {
		t.Fatalf("running %v, want the line's first after the asked probe", running)
	}
}

// TestLoginGateProbeForAWaitingToken: the probe comes earlier when a
// waiting login must start by then to keep its token valid, but never
// closer than the base step to the last probe.
func TestLoginGateProbeForAWaitingToken(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointRate: -1})
	h.g.health = HostHealth{Window: time.Second} // past the first window down at once: the backoff doubles
	t0 := h.clock.Now()
	const endpoint = "https://p.example"
	h.downHost(t, endpoint)
	h.submit(in("a", 1), endpoint, time.Time{})
	h.clock.Step(5 * time.Second)
	h.finishWith(t, in("a", 1), unavailableEnd) // next step: 10 s, at +15s
	h.submit(in("b", 1), endpoint, t0.Add(12*time.Second))
	if v := h.g.host(endpoint, h.clock.Now()); !v.NextProbe.Equal(t0.Add(12 * time.Second)) {
		t.Fatalf("next probe at +%s, want +12s, when b's token must be refreshed", v.NextProbe.Sub(t0))
	}
	h.clock.Step(7 * time.Second)
	if !h.running(in("b", 1)) {
		t.Fatalf("running %v at +12s, want b/tr-1", h.runningNow())
	}
	h.finishWith(t, in("b", 1), unavailableEnd) // brought forward: the step stays at +15s
	h.submit(in("c", 1), endpoint, t0.Add(14*time.Second))
	if v := h.g.host(endpoint, h.clock.Now()); !v.NextProbe.Equal(t0.Add(17 * time.Second)) {
		t.Errorf("next probe at +%s, want +17s: never closer than 5 s to the last", v.NextProbe.Sub(t0))
	}
	h.clock.Step(5 * time.Second)
	if !h.running(in("c", 1)) {
		t.Errorf("running %v at +17s, want c/tr-1", h.runningNow())
	}
}

// TestLoginGateProbeGone: a probe dropped before it ran, or one that
// reached nothing, gives way to the next at once.
func TestLoginGateProbeGone(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointRate: -1, PerNamespaceInFlight: 1})
	const endpoint = "https://p.example"
	h.downHost(t, endpoint)
	// The first probe waits for its namespace's one slot.
	h.submit(in("a", 0), "https://elsewhere.example", time.Time{})
	for _, who := range []types.NamespacedName{in("a", 1), in("b", 1), in("c", 1)} {
		h.submit(who, endpoint, time.Time{})
	}
	h.clock.Step(5 * time.Second)
	if running := h.runningNow(); len(running) != 1 {
		t.Fatalf("running %v, want only a/tr-0: the probe a/tr-1 waits for its namespace", running)
	}
	h.g.dropWaiting(in("a", 1))
	if !h.running(in("b", 1)) {
		t.Fatalf("running %v after the probe was dropped, want b/tr-1 at once", h.runningNow())
	}
	h.finishWith(t, in("b", 1), loginEnd{outcome: hostNotTried})
	if !h.running(in("c", 1)) {
		t.Fatalf("running %v after the probe reached nothing, want c/tr-1 at once", h.runningNow())
	}
}

// TestLoginGateReleasesEveryWaitingLogin: a hundred logins waiting on a
// down host all start once its probe answers, in the line's order, within
// the host's rate (default limits: 10 a second, a burst of 5, 4 in flight).
func TestLoginGateReleasesEveryWaitingLogin(t *testing.T) {
	h := newGateHarness(LoginLimits{})
	const endpoint = "https://p.example"
	h.downHost(t, endpoint)
	h.clock.Step(time.Second) // the bucket refills
	for i := range 100 {
		h.submit(in(fmt.Sprintf("ns-%d", i%4), i), endpoint, time.Time{})
	}
	h.clock.Step(5 * time.Second)
	probe := h.runningNow()
	if len(probe) != 1 {
		t.Fatalf("running %v, want one probe", probe)
	}
	h.finishWith(t, in("ns-0", 0), answeredEnd)
	if n := len(h.started); n != DefaultLoginLimits.PerEndpointInFlight {
		t.Fatalf("%d started when the probe answered, want the host's %d slots at once", n, DefaultLoginLimits.PerEndpointInFlight)
	}
	start := h.clock.Now()
	started := 1
	var order []types.NamespacedName
	for started < 100 {
		for who := range h.started {
			order = append(order, who)
			h.finish(t, who)
			started++
		}
		if started >= 100 {
			break
		}
		h.clock.Step(10 * time.Millisecond)
		if h.clock.Since(start) > 20*time.Second {
			t.Fatalf("%d of 100 started after 20 s", started)
		}
	}
	if took, limit := h.clock.Since(start), 10*time.Second; took > limit {
		t.Errorf("the 99 logins that waited took %s to start, want within %s (99 at 10/s less the burst)", took, limit)
	}
	// Namespaces take turns: the first four logins released are of four namespaces.
	seen := map[string]bool{}
	for _, who := range order[:4] {
		seen[who.Namespace] = true
	}
	if len(seen) != 4 && len(order) >= 4 {
		t.Errorf("the first released %v, want one of each namespace", order[:4])
	}
}

// TestLoginGateSweepKeepsDownHosts: a down host is remembered while
// logins wait on it, and forgotten once nobody has for a probe step's cap.
func TestLoginGateSweepKeepsDownHosts(t *testing.T) {
	h := newGateHarness(LoginLimits{})
	const endpoint = "https://p.example"
	h.downHost(t, endpoint)
	h.submit(in("a", 1), endpoint, time.Time{})
	h.g.sweep(h.clock.Now().Add(time.Hour))
	if !h.g.isDown("p.example") {
		t.Fatal("a down host with a login waiting on it was forgotten")
	}
	h.g.dropWaiting(in("a", 1))
	h.g.sweep(h.clock.Now().Add(time.Minute))
	if !h.g.isDown("p.example") {
		t.Fatal("a down host forgotten a minute after its last login waited")
	}
	h.g.sweep(h.clock.Now().Add(6 * time.Minute))
	if h.g.isDown("p.example") || len(h.g.hosts) != 0 {
		t.Errorf("hosts %v: a down host nobody waited on for 6 minutes is still remembered", h.g.hosts)
	}
}

// TestLoginGateProbeForALoginMovedInLine: a login that waited for its
// namespace's slot and then finds its host down waits on the host, and is
// probed with: nothing else arranges a probe for it.
func TestLoginGateProbeForALoginMovedInLine(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointRate: -1, PerNamespaceInFlight: 1})
	const endpoint = "https://p.example"
	h.submit(in("a", 0), "https://elsewhere.example", time.Time{})
	h.submit(in("a", 1), endpoint, time.Time{}) // waits for namespace a's slot
	h.downHost(t, endpoint)
	h.finish(t, in("a", 0))
	if l, _ := h.g.inFlight(in("a", 1)); !l.waitsOnHost {
		t.Fatalf("inFlight = %+v, want waiting on the down host", l)
	}
	h.clock.Step(5 * time.Second)
	if !h.running(in("a", 1)) {
		t.Fatalf("running %v at the probe's time, want a/tr-1", h.runningNow())
	}
}

// TestLoginGateNewcomerAfterALoneNamespace: a namespace alone in a line
// that has just had its turn does not have the next one too ahead of a
// namespace that came to wait after it (on a down host: a tenant whose
// probe failed does not take the next probe from another).
func TestLoginGateNewcomerAfterALoneNamespace(t *testing.T) {
	h := newGateHarness(LoginLimits{PerEndpointInFlight: 1, PerNamespaceInFlight: -1, PerEndpointRate: -1})
	const endpoint = "https://p.example"
	h.submit(in("hold", 0), endpoint, time.Time{})
	h.submit(in("a", 1), endpoint, time.Time{})
	h.submit(in("a", 2), endpoint, time.Time{})
	h.finish(t, in("hold", 0)) // a's turn: a/1
	h.submit(in("b", 1), endpoint, time.Time{})
	h.finish(t, in("a", 1))
	if !h.running(in("b", 1)) {
		t.Fatalf("running %v, want b/tr-1: a has just had its turn", h.runningNow())
	}
	// Two namespaces waiting: a newcomer is last in the round.
	h.submit(in("c", 1), endpoint, time.Time{})
	h.finish(t, in("b", 1))
	if !h.running(in("a", 2)) {
		t.Fatalf("running %v, want a/tr-2, whose turn it was before c came", h.runningNow())
	}
}
