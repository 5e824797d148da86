package controllers

import (
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
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
	// slotRetry is how soon a login that found no free slot is tried again.
	slotRetry = time.Second
	// urgentMargin: a refresh is not delayed by the rate limit past this long
	// before its token expires.
	urgentMargin = 5 * time.Second
)

// loginGate admits logins: at most so many in flight per endpoint host and
// per namespace, and at most so many per second per endpoint host. A login
// it does not admit is requeued by the caller without holding a worker.
type loginGate struct {
	limits LoginLimits

	mu         sync.Mutex
	hosts      map[string]*hostLogins
	namespaces map[string]int
}

type hostLogins struct {
	inFlight int
	limiter  *rate.Limiter
}

func newLoginGate(limits LoginLimits) *loginGate {
	return &loginGate{limits: limits.withDefaults(), hosts: map[string]*hostLogins{}, namespaces: map[string]int{}}
}

// admit asks for a login to endpoint from namespace at now. mustStartBy is
// the latest start that keeps the current token valid (zero: there is no
// valid token, so nothing expires while it waits). It returns a release
// function when admitted, else how long to wait before asking again.
func (g *loginGate) admit(endpoint, namespace string, now, mustStartBy time.Time) (release func(), wait time.Duration) {
	host := endpointHost(endpoint)
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	if h == nil {
		h = &hostLogins{}
		if g.limits.PerEndpointRate > 0 {
			h.limiter = rate.NewLimiter(rate.Limit(g.limits.PerEndpointRate), max(g.limits.PerEndpointBurst, 1))
		}
		g.hosts[host] = h
	}
	if n := g.limits.PerEndpointInFlight; n > 0 && h.inFlight >= n {
		return nil, slotRetry
	}
	if n := g.limits.PerNamespaceInFlight; n > 0 && g.namespaces[namespace] >= n {
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
		})
	}, 0
}

// endpointHost is the host (and port) logins to endpoint go to.
func endpointHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return endpoint
	}
	return strings.ToLower(u.Host)
}
