package controllers

import (
	"container/heap"
	"container/list"
	"context"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// LoginLimits bound what one endpoint host or one namespace can take of the
// operator, and what the operator sends to one endpoint host. Zero fields
// mean the defaults (DefaultLoginLimits); a negative field turns the bound off.
type LoginLimits struct {
	// PerEndpointInFlight bounds the logins waiting on one endpoint host, so
	// that an endpoint that accepts connections but never answers holds at
	// most this many connections, and a provider is not flooded.
	PerEndpointInFlight int
	// PerNamespaceInFlight bounds the logins in flight for one namespace, so
	// that no tenant takes every other tenant's turn.
	PerNamespaceInFlight int
	// TotalInFlight bounds the logins in flight in the whole operator: it
	// only protects the operator's memory and sockets (logins run off the
	// reconcile workers, so it does not protect them, and need not).
	TotalInFlight int
	// PerEndpointRate is the logins per second sent to one endpoint host
	// (a token bucket of PerEndpointBurst).
	PerEndpointRate  float64
	PerEndpointBurst int
}

// DefaultLoginLimits are chosen from `make bench` (docs/performance.md):
// four logins in flight per host and eight per namespace keep one slow
// provider or one busy tenant from flooding anyone; 10 logins a second with
// a burst of 5 is what External Secrets sends at its default concurrency,
// and what providers' rate limits allow; 256 logins in flight cost a few MiB.
var DefaultLoginLimits = LoginLimits{PerEndpointInFlight: 4, PerNamespaceInFlight: 8, TotalInFlight: 256, PerEndpointRate: 10, PerEndpointBurst: 5}

func (l LoginLimits) withDefaults() LoginLimits {
	d := DefaultLoginLimits
	if l.PerEndpointInFlight != 0 {
		d.PerEndpointInFlight = l.PerEndpointInFlight
	}
	if l.PerNamespaceInFlight != 0 {
		d.PerNamespaceInFlight = l.PerNamespaceInFlight
	}
	if l.TotalInFlight != 0 {
		d.TotalInFlight = l.TotalInFlight
	}
	if l.PerEndpointRate != 0 {
		d.PerEndpointRate = l.PerEndpointRate
	}
	if l.PerEndpointBurst != 0 {
		d.PerEndpointBurst = l.PerEndpointBurst
	}
	return d
}

// urgentMargin: a refresh is not delayed by the rate limit past this long
// before its token expires.
const urgentMargin = 5 * time.Second

// loginJob is one login, run off the reconcile workers.
type loginJob struct {
	who types.NamespacedName
	// endpoint is where the login goes; its host is what the per-host
	// bounds count.
	endpoint string
	// issuer identifies what the login is made with (provider, endpoint,
	// settings): a job still in line for another issuer than the spec's
	// now is replaced.
	issuer string
	// mustStartBy is the latest start that keeps the current token valid
	// (zero: there is no valid token, so nothing expires while it waits).
	// It also orders a namespace's logins in a line: the soonest first, a
	// login without a valid token (zero) before any.
	mustStartBy time.Time
	// run logs in and records the result where the next reconcile finds
	// it, and says what its end tells of the endpoint host. It must
	// return: the provider's own timeout bounds it.
	run func(ctx context.Context) loginEnd
	// kind names the controller whose done reconciles who ("": the
	// TokenRequest controller).
	kind string
	// nextProbe: a force-refresh or a credentials change asked for this
	// login; should its host be down, it is the next probe.
	nextProbe bool

	// Set by the gate.
	host  string
	state jobState
	// seq is its arrival at the gate: among logins whose tokens expire
	// alike, the first come goes first, in whichever line it waits.
	seq       uint64
	line      string      // the line it waits in, while queued
	index     int         // its place in its namespace's heap there
	timer     clock.Timer // while admitted and waiting for its rate token
	cancel    context.CancelFunc
	cancelled bool
}

// loginEnd is what the end of a login tells the gate of its host.
type loginEnd struct {
	// credentials identifies the account logged in with, across objects
	// (fingerprinter.account: in memory only; "": not known).
	credentials string
	outcome     hostOutcome
	retryAfter  time.Duration
}

type jobState int

const (
	jobQueued   jobState = iota // waiting in a line for a slot
	jobAdmitted                 // holds its slots; waiting for its rate token
	jobRunning                  // logging in
	jobDone                     // finished or dropped: holds nothing
)

// loginGate runs logins off the reconcile workers: a reconcile that decides
// to log in hands the login over (submit) and returns, so that no worker
// ever waits on a provider, whatever its endpoint does. The gate starts a
// login when it may: at most so many in flight per endpoint host, per
// namespace and in all, and at most so many a second per endpoint host.
// A login without a free slot waits in the line of the slot it lacks, in
// memory and without a goroutine, and starts when a slot frees. When a
// login ends, done is called: it enqueues the TokenRequest, whose next
// reconcile writes the token or records the failure.
//
// The gate also keeps each host's health (hosthealth.go) from the ends of
// its logins. While a host is down, its logins wait in the host's line,
// none starting on its own: the host is probed with one of them at a time,
// in the line's order (namespaces in turn, soonest expiry first within
// one) unless a force-refresh or a credentials change asked for one, on
// the host's own backoff; a probe that answers brings the host up and
// admits every login in the line at once, in its order, within the host's
// bounds and rate. A new gate (a restart, a new leader) has every host up.
type loginGate struct {
	limits LoginLimits
	// health tunes the hosts' health; jitter draws the probes' jitter.
	health HostHealth
	jitter func() float64
	clock  clock.WithDelayedExecution
	// done reconciles an object whose login ended, by the kind of its
	// controller (see start).
	done map[string]func(types.NamespacedName)
	// goFunc starts the login of who; tests start it when they choose.
	goFunc func(who types.NamespacedName, run func())

	mu    sync.Mutex
	ctx   context.Context
	hosts map[string]*hostLogins
	// namespaces counts the logins in flight by namespace.
	namespaces map[string]int
	total      int
	// jobs are the logins queued, admitted or running, by TokenRequest:
	// at most one each.
	jobs map[types.NamespacedName]*loginJob
	// lines hold the queued jobs by the slot they wait for ("host:" or
	// "namespace:" and its name, or "total"); see loginLine for the order.
	lines map[string]*loginLine
	// arrivals numbers the jobs submitted (loginJob.seq).
	arrivals uint64
}

type hostLogins struct {
	name     string
	inFlight int
	limiter  *rate.Limiter
	health   hostHealth
	// While the host is down: the login probing it (admitted or running;
	// nil when none), the timer of the next probe and when it fires, and
	// the logins asked to be the next probe, first come first.
	probe      *loginJob
	probeTimer clock.Timer
	probeAt    time.Time
	nextProbes []*loginJob
}

func newLoginGate(limits LoginLimits, clk clock.WithDelayedExecution) *loginGate {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &loginGate{limits: limits.withDefaults(), health: DefaultHostHealth, jitter: rand.Float64, clock: clk,
		goFunc: func(_ types.NamespacedName, run func()) { go run() },
		ctx:    context.Background(), hosts: map[string]*hostLogins{}, namespaces: map[string]int{},
		jobs: map[types.NamespacedName]*loginJob{}, lines: map[string]*loginLine{}}
}

// start gives the gate the context its logins run in (the controller's: a
// manager that stops cancels them) and what to call when a login of the
// controller of kind ends.
func (g *loginGate) start(ctx context.Context, kind string, done func(types.NamespacedName)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ctx = ctx
	if g.done == nil {
		g.done = map[string]func(types.NamespacedName){}
		// Only a leader's controllers start: its hosts' health is the
		// one exported, while it leads.
		hostUp.add(g)
		go func() { <-ctx.Done(); hostUp.remove(g) }()
	}
	g.done[kind] = done
}

// inFlightLogin is what the gate says of a login of a TokenRequest.
type inFlightLogin struct {
	issuer string
	// running: it has started.
	running bool
	// waitsOnHost: it waits in the line of its host, which is down;
	// nextProbe: it was asked to be the host's next probe.
	waitsOnHost, nextProbe bool
}

// inFlight reports whether a login of who is queued, admitted or running,
// and what of it.
func (g *loginGate) inFlight(who types.NamespacedName) (inFlightLogin, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	j := g.jobs[who]
	if j == nil {
		return inFlightLogin{}, false
	}
	h := g.hosts[j.host]
	waits := j.state == jobQueued && j.line == "host:"+j.host && h != nil && h.health.down
	return inFlightLogin{issuer: j.issuer, running: j.state == jobRunning, waitsOnHost: waits, nextProbe: waits && j.nextProbe}, true
}

// host says what the gate knows of endpoint's host at now.
func (g *loginGate) host(endpoint string, now time.Time) policy.HostView {
	name := endpointHost(endpoint)
	g.mu.Lock()
	defer g.mu.Unlock()
	v := policy.HostView{Name: name}
	h := g.hosts[name]
	if h == nil || !h.health.down {
		return v
	}
	v.Down = true
	switch {
	case h.probe != nil:
		v.NextProbe, v.Probing = now, true
	case h.probeTimer != nil:
		v.NextProbe = h.probeAt
	default:
		v.NextProbe = policy.Latest(now, h.health.probeAt(time.Time{}))
	}
	return v
}

// submit hands a login over. A job of the same TokenRequest still waiting
// is replaced; one already running is kept, and submit reports false.
func (g *loginGate) submit(job *loginJob) bool {
	var launch []*loginJob
	defer func() { g.launch(launch) }()
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	if j := g.jobs[job.who]; j != nil {
		if j.state == jobRunning {
			return false
		}
		launch = append(launch, g.drop(j, now)...)
	}
	job.host = endpointHost(job.endpoint)
	g.arrivals++
	job.seq = g.arrivals
	g.jobs[job.who] = job
	launch = append(launch, g.admitOrQueue(job, now)...)
	return true
}

// dropWaiting forgets a login of who that has not started yet: the
// TokenRequest no longer needs it.
func (g *loginGate) dropWaiting(who types.NamespacedName) {
	var launch []*loginJob
	defer func() { g.launch(launch) }()
	g.mu.Lock()
	defer g.mu.Unlock()
	if j := g.jobs[who]; j != nil && j.state != jobRunning {
		launch = g.drop(j, g.clock.Now())
	}
}

// cancel forgets any login of who, and cancels it if running: the
// TokenRequest is gone. done is not called for it.
func (g *loginGate) cancel(who types.NamespacedName) {
	var launch []*loginJob
	defer func() { g.launch(launch) }()
	g.mu.Lock()
	defer g.mu.Unlock()
	j := g.jobs[who]
	if j == nil {
		return
	}
	if j.state == jobRunning {
		j.cancelled = true
		j.cancel()
		return
	}
	launch = g.drop(j, g.clock.Now())
}

// drop removes a job that has not started. Called with g.mu held; returns
// the jobs its freed slots admitted (or, if it was to probe its down host,
// the next probe), to launch once the lock is released.
func (g *loginGate) drop(j *loginJob, now time.Time) []*loginJob {
	delete(g.jobs, j.who)
	var launch []*loginJob
	switch j.state {
	case jobQueued:
		g.leaveLine(j)
	case jobAdmitted:
		if j.timer != nil {
			j.timer.Stop()
		}
		launch = g.release(j, now)
	}
	j.state = jobDone
	if h := g.hosts[j.host]; h != nil && h.probe == j {
		h.probe = nil
		launch = append(launch, g.scheduleProbe(h, now)...)
	}
	return launch
}

// admitOrQueue admits j if every bound allows, else puts it in the line of
// the first bound that does not. Called with g.mu held.
func (g *loginGate) admitOrQueue(j *loginJob, now time.Time) []*loginJob {
	if line := g.blockedBy(j); line != "" {
		g.joinLine(line, j)
		if h := g.hosts[j.host]; h != nil && h.health.down && line == "host:"+j.host {
			return g.waitOnHost(h, j, now)
		}
		return nil
	}
	h := g.hostOf(j.host)
	h.inFlight++
	g.namespaces[j.who.Namespace]++
	g.total++
	j.state = jobAdmitted
	if h.limiter != nil {
		r := h.limiter.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			// A down host's probe, one login at a time, does not wait for
			// its token either. A token that has expired meanwhile (its
			// login waited in line past it) has nothing left to keep.
			stillValid := now.Before(j.mustStartBy.Add(urgentMargin))
			urgent := h.probe == j || !j.mustStartBy.IsZero() && stillValid && !now.Add(d).Before(j.mustStartBy)
			if !urgent {
				// Holds its slots while it waits for its token, in
				// order: the next in line would wait longer still.
				j.timer = g.clock.AfterFunc(d, func() { g.launch(g.started(j)) })
				return nil
			}
			// Keeping the token valid comes first: go now, and the tokens
			// borrowed delay the logins that can wait.
		}
	}
	return []*loginJob{j}
}

// started marks an admitted job whose rate token has come as ready to run,
// unless it was dropped meanwhile.
func (g *loginGate) started(j *loginJob) []*loginJob {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.jobs[j.who] != j || j.state != jobAdmitted {
		return nil
	}
	return []*loginJob{j}
}

// blockedBy names the line of the first bound that keeps j from starting
// now, or "" when none does. A down host keeps every login but its probe
// in its line; the probe, one login, takes no slot of the host's. Called
// with g.mu held.
func (g *loginGate) blockedBy(j *loginJob) string {
	if h := g.hosts[j.host]; h != nil && h.probe != j {
		if h.health.down {
			return "host:" + j.host
		}
		if n := g.limits.PerEndpointInFlight; n > 0 && h.inFlight >= n {
			return "host:" + j.host
		}
	}
	if n := g.limits.PerNamespaceInFlight; n > 0 && g.namespaces[j.who.Namespace] >= n {
		return "namespace:" + j.who.Namespace
	}
	if n := g.limits.TotalInFlight; n > 0 && g.total >= n {
		return "total"
	}
	return ""
}

func (g *loginGate) hostOf(name string) *hostLogins {
	h := g.hosts[name]
	if h == nil {
		h = &hostLogins{name: name, health: hostHealth{settings: g.health}}
		if g.limits.PerEndpointRate > 0 {
			h.limiter = rate.NewLimiter(rate.Limit(g.limits.PerEndpointRate), max(g.limits.PerEndpointBurst, 1))
		}
		g.hosts[name] = h
	}
	return h
}

// launch runs the jobs admitted, each in a goroutine of its own (goFunc).
// Called without g.mu held.
func (g *loginGate) launch(jobs []*loginJob) {
	for _, j := range jobs {
		g.mu.Lock()
		if g.jobs[j.who] != j || j.state != jobAdmitted {
			g.mu.Unlock()
			continue
		}
		ctx, cancel := context.WithCancel(g.ctx)
		j.state, j.cancel = jobRunning, cancel
		g.mu.Unlock()
		g.goFunc(j.who, func() {
			end := loginEnd{outcome: hostNotTried}
			defer func() { g.finish(j, end) }()
			end = j.run(ctx)
		})
	}
}

// finish records what a finished login says of its host, frees its slots,
// starts the logins they admit (all of its host's line, if it brought the
// host up; the next probe, if the host is down), and reconciles its
// TokenRequest.
func (g *loginGate) finish(j *loginJob, end loginEnd) {
	j.cancel()
	g.mu.Lock()
	now := g.clock.Now()
	if g.jobs[j.who] == j {
		delete(g.jobs, j.who)
	}
	var launch []*loginJob
	h := g.hosts[j.host]
	if h != nil {
		probe := h.probe == j
		if probe {
			h.probe = nil
		}
		_, cameUp := h.health.ended(now, endedLogin{who: j.who, credentials: end.credentials, outcome: end.outcome,
			retryAfter: end.retryAfter, probe: probe}, g.jitter())
		if cameUp {
			h.stopProbes()
		}
	}
	launch = append(launch, g.release(j, now)...)
	if h != nil {
		if h.health.down {
			launch = append(launch, g.scheduleProbe(h, now)...)
		} else {
			launch = append(launch, g.admitAll("host:"+h.name, now)...)
		}
	}
	done, cancelled, stopping := g.done[j.kind], j.cancelled, g.ctx.Err() != nil
	g.mu.Unlock()
	g.launch(launch)
	if done != nil && !cancelled && !stopping {
		done(j.who)
	}
}

// release frees the slots of an admitted or running job and admits the
// first in each line they free. Called with g.mu held.
func (g *loginGate) release(j *loginJob, now time.Time) []*loginJob {
	if h := g.hosts[j.host]; h != nil {
		h.inFlight--
	}
	if g.namespaces[j.who.Namespace]--; g.namespaces[j.who.Namespace] <= 0 {
		delete(g.namespaces, j.who.Namespace)
	}
	g.total--
	j.state = jobDone
	var launch []*loginJob
	for _, line := range []string{"host:" + j.host, "namespace:" + j.who.Namespace, "total"} {
		launch = append(launch, g.admitFirst(line, now)...)
	}
	return launch
}

// admitFirst admits the job whose turn it is in a line, if it may start
// now. A job at the head that now waits for another bound moves to that
// bound's line, and its namespace's turn here passes.
func (g *loginGate) admitFirst(line string, now time.Time) []*loginJob {
	var launch []*loginJob
	for {
		l := g.lines[line]
		if l == nil || l.Len() == 0 {
			return launch
		}
		j := l.first()
		blocked := g.blockedBy(j)
		if blocked == line {
			return launch
		}
		l.passTurn()
		g.leaveLine(j)
		if blocked != "" {
			// Into the line of the bound it waits for (a down host's
			// included, which takes note of it).
			launch = append(launch, g.admitOrQueue(j, now)...)
			continue
		}
		return append(launch, g.admitOrQueue(j, now)...)
	}
}

// admitAll admits from a line, in its order, every job its bound lets
// start (a host come up: every login that waited on it, within the host's
// slots; those admitted beyond its burst wait for their rate tokens).
func (g *loginGate) admitAll(line string, now time.Time) []*loginJob {
	var launch []*loginJob
	for {
		l := g.lines[line]
		if l == nil || l.Len() == 0 || g.blockedBy(l.first()) == line {
			return launch
		}
		launch = append(launch, g.admitFirst(line, now)...)
	}
}

// waitOnHost takes note of j, which has joined the line of its down host:
// perhaps as the next probe; perhaps bringing the probe forward for its
// token, or, if nobody waited, the first to wait for one. Called with g.mu
// held.
func (g *loginGate) waitOnHost(h *hostLogins, j *loginJob, now time.Time) []*loginJob {
	if j.nextProbe {
		// One entry per TokenRequest: a tenant bumping force-refresh
		// replaces its own, and adds none.
		h.nextProbes = slices.DeleteFunc(h.nextProbes, func(c *loginJob) bool { return c.who == j.who })
		h.nextProbes = append(h.nextProbes, j)
	}
	if h.probe == nil && (h.probeTimer == nil || j.mustStartBy.After(now) && j.mustStartBy.Before(h.probeAt)) {
		return g.scheduleProbe(h, now)
	}
	return nil
}

// scheduleProbe arranges a down host's next probe: now, if its time has
// come (returned, to launch once the lock is released), else on a timer.
// Nothing while a probe is under way or no login waits to probe with: the
// probe's end, or the next login to wait, schedules again. Called with
// g.mu held.
func (g *loginGate) scheduleProbe(h *hostLogins, now time.Time) []*loginJob {
	l := g.lines["host:"+h.name]
	if !h.health.down || h.probe != nil || l == nil || l.Len() == 0 {
		h.stopTimer()
		return nil
	}
	at := h.health.probeAt(l.soonestMustStartBy(now))
	if !at.After(now) {
		h.stopTimer()
		return g.startProbe(h, l, now)
	}
	if h.probeTimer != nil && h.probeAt.Equal(at) {
		return nil
	}
	h.stopTimer()
	h.probeAt = at
	// The callback runs under the clock's own lock with a fake clock: it
	// must not read the clock, so it is given its time.
	h.probeTimer = g.clock.AfterFunc(at.Sub(now), func() { g.launch(g.probeDue(h, at)) })
	return nil
}

// probeDue runs when a probe's timer fires, at at. The time was worked
// out when the timer was set (again whenever a login's end or a login
// joining the line could change it) and is kept: a login that brought it
// forward and has left since costs one early probe, no more. The callback
// neither reads nor sets the clock, since a fake clock runs it under its
// own lock; the probe it starts takes no timer either (admitOrQueue).
func (g *loginGate) probeDue(h *hostLogins, at time.Time) []*loginJob {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hosts[h.name] != h || h.probeTimer == nil || !h.probeAt.Equal(at) {
		return nil // forgotten, or stopped or set again meanwhile
	}
	h.probeTimer, h.probeAt = nil, time.Time{}
	l := g.lines["host:"+h.name]
	if !h.health.down || h.probe != nil || l == nil || l.Len() == 0 {
		return nil
	}
	return g.startProbe(h, l, at)
}

// startProbe takes the login to probe a down host with out of its line and
// admits it: the first asked to be the next probe, else the one whose turn
// it is. Called with g.mu held.
func (g *loginGate) startProbe(h *hostLogins, l *loginLine, now time.Time) []*loginJob {
	var j *loginJob
	for len(h.nextProbes) > 0 && j == nil {
		if c := h.nextProbes[0]; g.jobs[c.who] == c && c.state == jobQueued && c.line == "host:"+h.name {
			j = c
		}
		h.nextProbes = h.nextProbes[1:]
	}
	if j == nil {
		j = l.first()
		l.passTurn()
	}
	g.leaveLine(j)
	h.probe = j
	return g.admitOrQueue(j, now)
}

func (h *hostLogins) stopTimer() {
	if h.probeTimer != nil {
		h.probeTimer.Stop()
		h.probeTimer = nil
	}
	h.probeAt = time.Time{}
}

// stopProbes forgets a host's probes: it came up (a probe still under way
// ends as any login).
func (h *hostLogins) stopProbes() {
	h.stopTimer()
	h.probe, h.nextProbes = nil, nil
}

func (g *loginGate) joinLine(line string, j *loginJob) {
	l := g.lines[line]
	if l == nil {
		l = newLoginLine()
		g.lines[line] = l
	}
	j.state, j.line = jobQueued, line
	l.push(j)
}

// leaveLine takes a queued job out of its line; an empty line is forgotten.
func (g *loginGate) leaveLine(j *loginJob) {
	if l := g.lines[j.line]; l != nil {
		l.remove(j)
		if l.Len() == 0 {
			delete(g.lines, j.line)
		}
	}
	j.line = ""
}

// loginLine is the logins waiting for one slot. Namespaces take turns
// (round robin): a namespace with a thousand logins in line delays
// another's one by a single turn, not by a thousand, so no tenant can push
// another's refresh past its token's expiry by queueing. Within a
// namespace the login whose token expires soonest goes first (mustStartBy;
// none valid first), ties by arrival. Every operation is O(log n) in the
// namespace's logins, and a namespace with none left leaves the turns, so
// the line holds nothing for namespaces that no longer wait.
type loginLine struct {
	// turns are the namespaces waiting, in the order of their turns; next
	// is the one whose turn it is (nil when none waits); served is the
	// last to have had its turn (nil when it has left).
	turns       *list.List // of *namespaceLine
	next        *list.Element
	served      *list.Element
	byNamespace map[string]*namespaceLine
	len         int
}

// namespaceLine is one namespace's logins in a line.
type namespaceLine struct {
	namespace string
	turn      *list.Element // its place in the turns
	jobs      jobHeap
}

func newLoginLine() *loginLine {
	return &loginLine{turns: list.New(), byNamespace: map[string]*namespaceLine{}}
}

// Len is the number of logins in line.
func (l *loginLine) Len() int { return l.len }

// push puts j in line. A namespace not waiting yet takes its turn after
// every namespace that is: last in the current round; but before the one
// whose turn it is if that one has just had it (it was alone in line): a
// namespace that has just had its turn does not have the next one too
// ahead of a namespace that came after it. (A down host's probes: a
// tenant whose probe failed does not take the next probe from another
// tenant that came to wait after it.)
func (l *loginLine) push(j *loginJob) {
	q := l.byNamespace[j.who.Namespace]
	if q == nil {
		q = &namespaceLine{namespace: j.who.Namespace}
		switch {
		case l.next == nil:
			q.turn = l.turns.PushBack(q)
			l.next = q.turn
		case l.next == l.served:
			q.turn = l.turns.InsertBefore(q, l.next)
			l.next = q.turn
		default:
			q.turn = l.turns.InsertBefore(q, l.next)
		}
		l.byNamespace[q.namespace] = q
	}
	heap.Push(&q.jobs, j)
	l.len++
}

// first is the login whose turn it is: the namespace in turn's soonest.
func (l *loginLine) first() *loginJob {
	return l.next.Value.(*namespaceLine).jobs[0]
}

// passTurn gives the turn to the next namespace.
func (l *loginLine) passTurn() {
	if l.next != nil {
		l.served = l.next
		l.next = l.after(l.next)
	}
}

// after is the namespace whose turn follows e's.
func (l *loginLine) after(e *list.Element) *list.Element {
	if n := e.Next(); n != nil {
		return n
	}
	return l.turns.Front()
}

// soonestMustStartBy is the earliest time a login in line must start by to
// keep its token valid, of those not yet past at now (zero: none). It
// looks at every login in line: a down host's probe asks it once per
// probe.
func (l *loginLine) soonestMustStartBy(now time.Time) time.Time {
	var soonest time.Time
	for _, q := range l.byNamespace {
		for _, j := range q.jobs {
			if !j.mustStartBy.Before(now) && (soonest.IsZero() || j.mustStartBy.Before(soonest)) {
				soonest = j.mustStartBy
			}
		}
	}
	return soonest
}

// remove takes j, which waits in this line, out of it.
func (l *loginLine) remove(j *loginJob) {
	q := l.byNamespace[j.who.Namespace]
	heap.Remove(&q.jobs, j.index)
	l.len--
	if q.jobs.Len() > 0 {
		return
	}
	if l.next == q.turn {
		if l.next = l.after(q.turn); l.next == q.turn {
			l.next = nil
		}
	}
	if l.served == q.turn {
		l.served = nil
	}
	l.turns.Remove(q.turn)
	delete(l.byNamespace, q.namespace)
}

// jobHeap is a namespace's logins in a line, a min-heap by mustStartBy,
// then arrival; each job knows its index, so one leaves in O(log n).
type jobHeap []*loginJob

func (h jobHeap) Len() int { return len(h) }

func (h jobHeap) Less(a, b int) bool {
	if !h[a].mustStartBy.Equal(h[b].mustStartBy) {
		return h[a].mustStartBy.Before(h[b].mustStartBy)
	}
	return h[a].seq < h[b].seq
}

func (h jobHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].index, h[b].index = a, b
}

func (h *jobHeap) Push(x any) {
	j := x.(*loginJob)
	j.index = len(*h)
	*h = append(*h, j)
}

func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil // no reference kept to a job gone
	*h = old[:len(old)-1]
	j.index = -1
	return j
}

// sweep forgets the hosts that have nothing in flight, nobody in line, a
// full token bucket and nothing to remember of their health (up, no
// failure within the window; or down with nobody waiting on it since a
// probe step's cap): a host seen once must not be remembered forever. A
// forgotten host starts again up, with a full bucket, as it would have.
func (g *loginGate) sweep(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, h := range g.hosts {
		if h.inFlight > 0 || g.lines["host:"+name] != nil || h.probe != nil {
			continue
		}
		if h.limiter != nil && h.limiter.TokensAt(now) < float64(h.limiter.Burst()) {
			continue
		}
		if !h.health.idle(now) && !(h.health.down && now.Sub(h.health.probedAt) > h.health.settings.withDefaults().ProbeCap) {
			continue
		}
		h.stopProbes()
		delete(g.hosts, name)
	}
}

// isDown reports whether the gate holds host down.
func (g *loginGate) isDown(host string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	return h != nil && h.health.down
}

// endpointHost is the host logins to endpoint go to, normalised so that
// every spelling of one host counts as one: lower case, without a trailing
// dot, with the port only when it is not the scheme's default.
func endpointHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return strings.ToLower(endpoint)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := u.Port()
	if port == "" || (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}
