package controllers

import (
	"container/heap"
	"container/list"
	"context"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

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
	// it. It must return: the provider's own timeout bounds it.
	run func(ctx context.Context)
	// kind names the controller whose done reconciles who ("": the
	// TokenRequest controller).
	kind string

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
type loginGate struct {
	limits LoginLimits
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
	inFlight int
	limiter  *rate.Limiter
}

func newLoginGate(limits LoginLimits, clk clock.WithDelayedExecution) *loginGate {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &loginGate{limits: limits.withDefaults(), clock: clk, goFunc: func(_ types.NamespacedName, run func()) { go run() },
		ctx: context.Background(), hosts: map[string]*hostLogins{}, namespaces: map[string]int{},
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
	}
	g.done[kind] = done
}

// inFlight reports whether a login of who is queued, admitted or running,
// and for which issuer; running is true once it has started.
func (g *loginGate) inFlight(who types.NamespacedName) (issuer string, running, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	j := g.jobs[who]
	if j == nil {
		return "", false, false
	}
	return j.issuer, j.state == jobRunning, true
}

// submit hands a login over. A job of the same TokenRequest still waiting
// is replaced; one already running is kept, and submit reports false.
func (g *loginGate) submit(job *loginJob) bool {
	var launch []*loginJob
	defer func() { g.launch(launch) }()
	g.mu.Lock()
	defer g.mu.Unlock()
	if j := g.jobs[job.who]; j != nil {
		if j.state == jobRunning {
			return false
		}
		launch = append(launch, g.drop(j)...)
	}
	job.host = endpointHost(job.endpoint)
	g.arrivals++
	job.seq = g.arrivals
	g.jobs[job.who] = job
	launch = append(launch, g.admitOrQueue(job)...)
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
		launch = g.drop(j)
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
	launch = g.drop(j)
}

// drop removes a job that has not started. Called with g.mu held; returns
// the jobs its freed slots admitted, to launch once the lock is released.
func (g *loginGate) drop(j *loginJob) []*loginJob {
	delete(g.jobs, j.who)
	switch j.state {
	case jobQueued:
		g.leaveLine(j)
		return nil
	case jobAdmitted:
		if j.timer != nil {
			j.timer.Stop()
		}
		return g.release(j)
	}
	return nil
}

// admitOrQueue admits j if every bound allows, else puts it in the line of
// the first bound that does not. Called with g.mu held.
func (g *loginGate) admitOrQueue(j *loginJob) []*loginJob {
	if line := g.blockedBy(j); line != "" {
		g.joinLine(line, j)
		return nil
	}
	h := g.host(j.host)
	h.inFlight++
	g.namespaces[j.who.Namespace]++
	g.total++
	j.state = jobAdmitted
	now := g.clock.Now()
	if h.limiter != nil {
		r := h.limiter.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			urgent := !j.mustStartBy.IsZero() && !now.Add(d).Before(j.mustStartBy)
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
// now, or "" when none does. Called with g.mu held.
func (g *loginGate) blockedBy(j *loginJob) string {
	if n := g.limits.PerEndpointInFlight; n > 0 && g.hosts[j.host] != nil && g.hosts[j.host].inFlight >= n {
		return "host:" + j.host
	}
	if n := g.limits.PerNamespaceInFlight; n > 0 && g.namespaces[j.who.Namespace] >= n {
		return "namespace:" + j.who.Namespace
	}
	if n := g.limits.TotalInFlight; n > 0 && g.total >= n {
		return "total"
	}
	return ""
}

func (g *loginGate) host(name string) *hostLogins {
	h := g.hosts[name]
	if h == nil {
		h = &hostLogins{}
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
			defer func() { g.finish(j) }()
			j.run(ctx)
		})
	}
}

// finish frees a finished job's slots, starts the logins they admit, and
// reconciles its TokenRequest.
func (g *loginGate) finish(j *loginJob) {
	j.cancel()
	g.mu.Lock()
	if g.jobs[j.who] == j {
		delete(g.jobs, j.who)
	}
	launch := g.release(j)
	done, cancelled, stopping := g.done[j.kind], j.cancelled, g.ctx.Err() != nil
	g.mu.Unlock()
	g.launch(launch)
	if done != nil && !cancelled && !stopping {
		done(j.who)
	}
}

// release frees the slots of an admitted or running job and admits the
// first in each line they free. Called with g.mu held.
func (g *loginGate) release(j *loginJob) []*loginJob {
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
		launch = append(launch, g.admitFirst(line)...)
	}
	return launch
}

// admitFirst admits the job whose turn it is in a line, if it may start
// now. A job at the head that now waits for another bound moves to that
// bound's line, and its namespace's turn here passes.
func (g *loginGate) admitFirst(line string) []*loginJob {
	for {
		l := g.lines[line]
		if l == nil || l.Len() == 0 {
			return nil
		}
		j := l.first()
		blocked := g.blockedBy(j)
		if blocked == line {
			return nil
		}
		l.passTurn()
		g.leaveLine(j)
		if blocked != "" {
			g.joinLine(blocked, j)
			continue
		}
		return g.admitOrQueue(j)
	}
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
	// is the one whose turn it is (nil when none waits).
	turns       *list.List // of *namespaceLine
	next        *list.Element
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
// every namespace that is: last in the current round.
func (l *loginLine) push(j *loginJob) {
	q := l.byNamespace[j.who.Namespace]
	if q == nil {
		q = &namespaceLine{namespace: j.who.Namespace}
		if l.next == nil {
			q.turn = l.turns.PushBack(q)
			l.next = q.turn
		} else {
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

// sweep forgets the hosts that have nothing in flight, nobody in line and
// a full token bucket: a host seen once must not be remembered forever.
// A forgotten host starts again with a full bucket, as it would have.
func (g *loginGate) sweep(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, h := range g.hosts {
		if h.inFlight > 0 || g.lines["host:"+name] != nil {
			continue
		}
		if h.limiter != nil && h.limiter.TokensAt(now) < float64(h.limiter.Burst()) {
			continue
		}
		delete(g.hosts, name)
	}
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
