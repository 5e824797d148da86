package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tokensync/tokensync/providers/providertest"
)

// trsPerHost is how many TokenRequests of a batch share one endpoint host.
// The operator sends at most 10 logins a second (burst 5) to one host, a
// deliberate protection of providers; ten TokenRequests per host keep the
// latency and burst scenarios, which compare API-server-side throughput with
// a plain client, clear of that delay (docs/performance.md).
const trsPerHost = 10

// hostsFor is how many endpoint hosts n TokenRequests are spread over.
func hostsFor(n int) int { return max(1, (n+trsPerHost-1)/trsPerHost) }

// endpointPool serves a fake provider on as many loopback addresses as the
// batches ask for: the whole of 127.0.0.0/8 is loopback on Linux, and the
// operator's endpoint policy allows plain http to loopback hosts. Each
// address is an endpoint host of its own to the operator, whose login
// limits are per host. The pool notes when each request arrived, by host.
type endpointPool struct {
	fake   *providertest.Server
	server *http.Server
	// next is the index of the next address to hand out, shared by every
	// pool of a run so that no two pools serve the same address.
	next *addressCounter

	mu       sync.Mutex
	requests map[string][]time.Time
	// inFlight are the requests being served, mostInFlight the most at once.
	inFlight, mostInFlight int
}

// addressCounter hands out loopback addresses: 127.1.0.1, 127.1.0.2, ...
// (127.0.0.0/16 is left to everything else on the machine).
type addressCounter struct {
	mu sync.Mutex
	n  int
}

func (c *addressCounter) take() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	const perSecondOctet = 256 * 254 // x.y.1 to x.y.254 for every y
	k := c.n
	if k >= 255*perSecondOctet {
		return "", errors.New("out of loopback addresses")
	}
	c.n++
	return fmt.Sprintf("127.%d.%d.%d", 1+k/perSecondOctet, (k/254)%256, 1+k%254), nil
}

func newEndpointPool(fake *providertest.Server, next *addressCounter) *endpointPool {
	p := &endpointPool{fake: fake, next: next, requests: map[string][]time.Time{}}
	p.server = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	return p
}

func (p *endpointPool) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	p.mu.Lock()
	p.requests[r.Host] = append(p.requests[r.Host], now)
	p.inFlight++
	p.mostInFlight = max(p.mostInFlight, p.inFlight)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	p.fake.Handler().ServeHTTP(w, r)
}

// most is the most requests the pool served at once.
func (p *endpointPool) most() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mostInFlight
}

// hosts listens on n new loopback addresses and returns their base URLs.
func (p *endpointPool) hosts(n int) ([]string, error) {
	urls := make([]string, 0, n)
	for range n {
		ip, err := p.next.take()
		if err != nil {
			return nil, err
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, fmt.Errorf("fake provider: listen on %s: %w", ip, err)
		}
		go func() { _ = p.server.Serve(l) }()
		urls = append(urls, "http://"+l.Addr().String())
	}
	return urls, nil
}

// close stops listening and closes the fake and every connection, so that
// hanging requests end at once.
func (p *endpointPool) close() {
	p.fake.Close()
	_ = p.server.Close()
}

// requestsTo counts the requests host (host:port) received in [from, to).
func (p *endpointPool) requestsTo(host string, from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, t := range p.requests[host] {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// hostRate is the most requests one endpoint host received within one
// second, and which host it was.
type hostRate struct {
	Peak int
	Host string
}

// peakPerSecond is the most requests any of urls' hosts received within a
// sliding second between from and to. The operator's token bucket allows at
// most rate + burst in any second.
func (p *endpointPool) peakPerSecond(urls []string, from, to time.Time) hostRate {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best hostRate
	for _, u := range urls {
		host := u[len("http://"):]
		var times []time.Time
		for _, t := range p.requests[host] {
			if !t.Before(from) && !t.After(to) {
				times = append(times, t)
			}
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		for i, j := 0, 0; j < len(times); j++ {
			for times[j].Sub(times[i]) >= time.Second {
				i++
			}
			if n := j - i + 1; n > best.Peak {
				best = hostRate{Peak: n, Host: host}
			}
		}
	}
	return best
}

func (r hostRate) String() string {
	if r.Host == "" {
		return "no logins"
	}
	return fmt.Sprintf("%d logins/s (host %s)", r.Peak, r.Host)
}
