package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tokensync/tokensync/providers/providertest"
)

// Scenarios 6 and 8 run the same refresh workload: 6 alone, 8 beside a
// namespace whose endpoints hang. The refresh workload uses AML Watcher, so
// that it can set that provider's token lifetime without touching the
// other scenarios.
func (b *bench) refreshBatch(ns string) (batch, error) {
	return b.spread(batch{ns: ns, provider: providertest.AML, prefix: "refresh", n: b.sc.refreshN, refreshBefore: b.sc.refreshBefore})
}

// hangHosts is how many hanging endpoint hosts scenario 8's noisy namespace
// uses: more than one, so that the operator's bound per namespace (8 logins
// in flight), not the one per host (4), is what has to hold them.
const hangHosts = 4

// refreshScenario is scenario 6: short-lived tokens, each Secret's token
// checked every 250 ms, on a manager with nothing else to do.
func (b *bench) refreshScenario(ctx context.Context) error {
	rb, err := b.refreshBatch("bench-refresh")
	if err != nil {
		return err
	}
	b.rep.Refresh, err = b.runRefresh(ctx, rb, nil)
	return err
}

// noise runs beside a refresh run: start when its TokenRequests are
// created, stop when its observation ends, before the wind-down (which
// waits for the manager to be quiet).
type noise struct {
	start, stop func(context.Context) error
}

// noisyNeighbour is scenario 8: scenario 6's workload in one namespace while
// another namespace's TokenRequests log in at endpoints that accept
// connections and never answer.
func (b *bench) noisyNeighbour(ctx context.Context) error {
	hangFake := providertest.New()
	for _, p := range providerNames {
		hangFake.Hang(p, true)
	}
	hanging := newEndpointPool(hangFake, &b.addrs)
	defer hanging.close()
	urls, err := hanging.hosts(hangHosts)
	if err != nil {
		return err
	}
	hb := batch{ns: "bench-noisy-hang", provider: providertest.Partner, prefix: "hang", n: b.sc.hangN, endpoints: urls}
	if err := b.newBatch(ctx, hb); err != nil {
		return err
	}
	rb, err := b.refreshBatch("bench-noisy-refresh")
	if err != nil {
		return err
	}
	r := &b.rep.Noisy
	r.HangN, r.HangHosts = hb.n, len(urls)
	r.Refresh, err = b.runRefresh(ctx, rb, &noise{
		start: func(ctx context.Context) error { return b.createTokenRequests(ctx, hb, 16) },
		stop: func(ctx context.Context) error {
			r.HangAttempts, r.MostInFlight = hangFake.Attempts(hb.provider), hanging.most()
			// Closing the endpoints ends the hanging logins at once; the
			// manager is then quiet again once their TokenRequests are gone.
			hanging.close()
			return b.deleteBatch(ctx, hb)
		},
	})
	b.logf("noisy neighbour: %d login attempts at the hanging endpoints, at most %d at once", r.HangAttempts, r.MostInFlight)
	return err
}

// runRefresh creates rb's TokenRequests with the provider issuing
// sc.refreshLifetime tokens, watches their Secrets for sc.refreshObserve,
// then winds down so that logins and stored tokens can be counted exactly.
// Without noise it also counts the API requests per refresh, between two
// moments the manager is quiet: after the creations, and after the
// wind-down.
func (b *bench) runRefresh(ctx context.Context, rb batch, with *noise) (refreshResult, error) {
	r := refreshResult{N: rb.n, Lifetime: b.sc.refreshLifetime, Observe: b.sc.refreshObserve, RefreshBefore: rb.refreshBefore}
	b.fake.SetLifetime(rb.provider, b.sc.refreshLifetime)
	b.obs.trackSecretsIn(rb.ns)
	if err := b.newBatch(ctx, rb); err != nil {
		return r, err
	}
	before, err := b.snapshot(ctx)
	if err != nil {
		return r, err
	}
	samples := b.obs.sample(ctx, rb.ns)
	start := time.Now()
	var g errgroup.Group
	g.Go(func() error { return b.createTokenRequests(ctx, rb, 16) })
	if with != nil {
		g.Go(func() error { return with.start(ctx) })
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	if _, err := b.obs.waitFirstReady(ctx, rb, b.sc.timeout); err != nil {
		return r, err
	}
	var steadyFrom snapshot
	var steadyStart time.Time
	if with == nil {
		if _, err := b.waitQuiet(ctx, 0); err != nil {
			return r, err
		}
		if steadyFrom, err = b.snapshot(ctx); err != nil {
			return r, err
		}
		steadyStart = time.Now()
	}
	if err := sleep(ctx, time.Until(start.Add(b.sc.refreshObserve))); err != nil {
		return r, err
	}
	looks := samples()
	end := time.Now()
	after, err := b.snapshot(ctx)
	if err != nil {
		return r, err
	}
	r.Manager = managerSummary(before.manager, after.manager)
	r.Window, r.WindowLength = after.requests.since(before.requests), end.Sub(start)
	r.Peak = b.endpoints.peakPerSecond(rb.endpoints, start, end)
	if with != nil {
		if err := with.stop(ctx); err != nil {
			return r, err
		}
	}

	// Wind down: from now on tokens live an hour, so each TokenRequest
	// refreshes once more at most and then holds a token that is not due.
	b.fake.SetLifetime(rb.provider, time.Hour)
	longLived := 0
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, b.sc.refreshLifetime+time.Minute, true, func(context.Context) (bool, error) {
		tokens, _ := b.obs.histories(rb)
		longLived = 0
		for _, h := range tokens {
			if len(h) > 0 && time.Until(h[len(h)-1].expiry) > 30*time.Minute {
				longLived++
			}
		}
		return longLived == rb.n, nil
	})
	if err != nil {
		return r, fmt.Errorf("refresh: %d of %d Secrets hold a long-lived token after the lifetime changed: %w", longLived, rb.n, err)
	}
	if _, err := b.waitQuiet(ctx, 0); err != nil {
		return r, err
	}

	var tokens [][]tokenSeen
	tokens, r.secretWatch = b.watched(rb, looks)
	plans := b.obs.plans(rb)
	var offsets, late []time.Duration
	for i, h := range tokens {
		for j := 1; j < len(h); j++ {
			if h[j].at.After(end) {
				break
			}
			offsets = append(offsets, h[j].at.Sub(h[j-1].expiry))
			if p, ok := planFor(plans[i], h[j-1].expiry); ok {
				late = append(late, h[j].at.Sub(p.at))
			} else {
				r.Unplanned++
			}
		}
	}
	if len(offsets) > 0 {
		r.Earliest, r.Median, r.Latest = slices.Min(offsets), percentile(offsets, 50), slices.Max(offsets)
	}
	r.Refreshes = len(offsets)
	if len(late) > 0 {
		r.LateP50, r.LateP99, r.LateMax = percentile(late, 50), percentile(late, 99), slices.Max(late)
	}

	if with == nil {
		steadyTo, err := b.snapshot(ctx)
		if err != nil {
			return r, err
		}
		// Every TokenRequest's first token was stored before the window;
		// every later one is a refresh within it.
		for _, h := range tokens {
			for _, t := range h {
				if t.at.After(steadyStart) {
					r.Steady.refreshes++
				}
			}
		}
		r.Steady.requestCounts = steadyTo.requests.since(steadyFrom.requests)
	}
	b.logf("refresh (%s): %d of %d samples expired, %d empty; refreshes %s to %s relative to expiry, %s to %s after the planned time (p99 %s); %d logins for %d tokens stored; peak %s; manager: %s",
		rb.ns, r.Expired, r.Samples, r.Empty, signedSecs(r.Earliest), signedSecs(r.Latest), signedSecs(r.LateP50), signedSecs(r.LateMax), signedSecs(r.LateP99),
		r.Logins, r.Tokens, r.Peak, r.Manager)
	if with == nil {
		b.logf("refresh: API requests per refresh: %s", r.Steady)
	}
	return r, nil
}

// planFor finds the refresh the operator planned for the token that expires
// at expiry. The status records the expiry counted on the operator's clock
// from the login's start, to the second; the token's own exp claim is the
// provider's: they differ by about a second at most, and one TokenRequest's
// tokens expire seconds apart.
func planFor(plans []plannedRefresh, expiry time.Time) (plannedRefresh, bool) {
	var best plannedRefresh
	found := false
	for _, p := range plans {
		d := p.expiresAt.Sub(expiry).Abs()
		if d <= 2*time.Second && (!found || d < best.expiresAt.Sub(expiry).Abs()) {
			best, found = p, true
		}
	}
	return best, found
}
