package controllers

import (
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
)

// LoginLimits bound what one endpoint host or one namespace can take of the
// operator, and what the operator sends to one endpoint host. Zero fields
// mean the defaults (DefaultLoginLimits); a negative field turns the bound off.
type LoginLimits struct {
	// PerEndpointInFlight bounds the logins waiting on one endpoint host, so
	// an endpoint that accepts connections but never answers occupies at
	// most this many workers.
	PerEndpointInFlight int
	// PerNamespaceInFlight bounds the logins in flight for one namespace.
	PerNamespaceInFlight int
	// PerEndpointRate is the logins per second sent to one endpoint host
	// (a token bucket of PerEndpointBurst).
	PerEndpointRate  float64
	PerEndpointBurst int
}

// DefaultLoginLimits are chosen from `make bench` (docs/performance.md):
// with 16 workers, four hanging logins per host leave twelve for everyone
// else; 10 logins a second with a burst of 5 is what External Secrets sends
// at its default concurrency, and what providers' rate limits allow.
var DefaultLoginLimits = LoginLimits{PerEndpointInFlight: 4, PerNamespaceInFlight: 8, PerEndpointRate: 10, PerEndpointBurst: 5}

func (l LoginLimits) withDefaults() LoginLimits {
	d := DefaultLoginLimits
	if l.PerEndpointInFlight != 0 {
		d.PerEndpointInFlight = l.PerEndpointInFlight
	}
	if l.PerNamespaceInFlight != 0 {
		d.PerNamespaceInFlight = l.PerNamespaceInFlight
	}
	if l.PerEndpointRate != 0 {
		d.PerEndpointRate = l.PerEndpointRate
	}
	if l.PerEndpointBurst != 0 {
		d.PerEndpointBurst = l.PerEndpointBurst
	}
	return d
}

const (
	// slotRetry is how soon a login that found no free slot is tried again
	// if no slot freed wakes it first.
	slotRetry = 15 * time.Second
	// urgentMargin: a refresh is not delayed by the rate limit past this long
	// before its token expires.
	urgentMargin = 5 * time.Second
)

// loginGate admits logins: at most so many in flight per endpoint host and
// per namespace, and at most so many per second per endpoint host. A login
// it does not admit is requeued by the caller without holding a worker; one
// that found no free slot waits in line, and a slot freed wakes the first in
// line (wake), so that a burst in one namespace is not reconciled over and
// over to ask again.
type loginGate struct {
	limits LoginLimits
	// wake, when set, reconciles a TokenRequest whose turn has come.
	wake func(types.NamespacedName)

	mu         sync.Mutex
	hosts      map[string]*hostLogins
	namespaces map[string]int
	// waiting lines up the TokenRequests that found no slot, by the slot
	// they wait for ("host:" or "namespace:" and its name).
	waiting map[string][]types.NamespacedName
	inLine  map[types.NamespacedName]string
}

type hostLogins struct {
	inFlight int
	limiter  *rate.Limiter
}

func newLoginGate(limits LoginLimits) *loginGate {
	return &loginGate{limits: limits.withDefaults(), hosts: map[string]*hostLogins{}, namespaces: map[string]int{},
		waiting: map[string][]types.NamespacedName{}, inLine: map[types.NamespacedName]string{}}
}

// admit asks for a login of the TokenRequest who to endpoint at now.
// mustStartBy is the latest start that keeps the current token valid (zero:
// there is no valid token, so nothing expires while it waits). It returns a
// release function when admitted, else how long to wait before asking again
// (unless woken first).
func (g *loginGate) admit(who types.NamespacedName, endpoint string, now, mustStartBy time.Time) (release func(), wait time.Duration) {
	host, namespace := endpointHost(endpoint), who.Namespace
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leaveLine(who)
	h := g.hosts[host]
	if h == nil {
		h = &hostLogins{}
		if g.limits.PerEndpointRate > 0 {
			h.limiter = rate.NewLimiter(rate.Limit(g.limits.PerEndpointRate), max(g.limits.PerEndpointBurst, 1))
		}
		g.hosts[host] = h
	}
	if n := g.limits.PerEndpointInFlight; n > 0 && h.inFlight >= n {
		g.joinLine("host:"+host, who)
		return nil, slotRetry
	}
	if n := g.limits.PerNamespaceInFlight; n > 0 && g.namespaces[namespace] >= n {
		g.joinLine("namespace:"+namespace, who)
		return nil, slotRetry
	}
	if h.limiter != nil {
		r := h.limiter.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			urgent := !mustStartBy.IsZero() && !now.Add(d).Before(mustStartBy)
			if !urgent {
				r.CancelAt(now)
				return nil, d
			}
			// Keeping the token valid comes first: go now, and the tokens
			// borrowed delay the logins that can wait.
		}
	}
	h.inFlight++
	g.namespaces[namespace]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			h.inFlight--
			if g.namespaces[namespace]--; g.namespaces[namespace] <= 0 {
				delete(g.namespaces, namespace)
			}
			g.wakeFirst("host:" + host)
			g.wakeFirst("namespace:" + namespace)
		})
	}, 0
}

func (g *loginGate) joinLine(slot string, who types.NamespacedName) {
	g.waiting[slot] = append(g.waiting[slot], who)
	g.inLine[who] = slot
}

// leaveLine takes who out of the line it waits in, if any.
func (g *loginGate) leaveLine(who types.NamespacedName) {
	slot, ok := g.inLine[who]
	if !ok {
		return
	}
	g.outOfLine(who)
	line := g.waiting[slot]
	for i, w := range line {
		if w == who {
			line = append(line[:i:i], line[i+1:]...)
			break
		}
	}
	if len(line) == 0 {
		delete(g.waiting, slot)
	} else {
		g.waiting[slot] = line
	}
}

// wakeFirst reconciles the first TokenRequest waiting for slot. Called with
// g.mu held; wake must not block.
func (g *loginGate) wakeFirst(slot string) {
	line := g.waiting[slot]
	if len(line) == 0 || g.wake == nil {
		return
	}
	who := line[0]
	if len(line) == 1 {
		delete(g.waiting, slot)
	} else {
		g.waiting[slot] = line[1:]
	}
	g.outOfLine(who)
	g.wake(who)
}

// outOfLine forgets the line who waited in. Go maps do not shrink: when the
// last one leaves, after a burst, the map starts afresh.
func (g *loginGate) outOfLine(who types.NamespacedName) {
	delete(g.inLine, who)
	if len(g.inLine) == 0 {
		g.inLine = map[types.NamespacedName]string{}
	}
}

// endpointHost is the host (and port) logins to endpoint go to.
func endpointHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return endpoint
	}
	return strings.ToLower(u.Host)
}
