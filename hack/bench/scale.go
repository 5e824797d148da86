package main

import (
	"maps"
	"slices"
	"time"
)

// scale sizes every scenario of a run.
type scale struct {
	name string

	// Scenario 1: TokenRequests created one after another.
	latencyN int
	// Scenario 2: TokenRequests created at once, by burstCreators clients.
	burstN, burstCreators int
	// Scenario 4: how long the operator is watched while idle.
	idleWindow time.Duration
	// Scenario 5: unrelated Secrets added to the cluster, their size, and
	// how long the manager is given to take them in before it is measured.
	unrelatedN, unrelatedBytes int
	memorySettle               time.Duration
	// Scenarios 6 and 8: short-lived tokens watched over refreshObserve,
	// refreshBefore unset when zero (the operator's default window).
	refreshN                                       int
	refreshLifetime, refreshBefore, refreshObserve time.Duration
	// Scenario 7: tokens due for refresh while the provider fails half its
	// calls for outage. The refresh window (flakyRefreshBefore, honoured up
	// to half the lifetime) is longer than the outage, so the old tokens
	// outlive it.
	flakyN                                    int
	flakyLifetime, flakyRefreshBefore, outage time.Duration
	// Scenario 8: TokenRequests whose endpoints hang, beside a refresh run
	// like scenario 6's.
	hangN int
	// Scenario 9: the namespaces one ClusterTokenRequest writes its Secret to.
	fanoutN int
	// Scenario 10: TokenRequests of outageLifetime tokens on one endpoint
	// host, the provider answering 503 to every login for hostOutage.
	outageN                    int
	outageLifetime, hostOutage time.Duration
	// timeout bounds each wait for Ready.
	timeout time.Duration
}

// defaultScale is make bench's: about eleven minutes on 2 cores.
var defaultScale = scale{
	name:     "default",
	latencyN: 200, burstN: 1000, burstCreators: 32,
	idleWindow: time.Minute,
	unrelatedN: 2000, unrelatedBytes: 100 << 10, memorySettle: 10 * time.Second,
	refreshN: 200, refreshLifetime: 20 * time.Second, refreshObserve: 2 * time.Minute,
	flakyN: 200, flakyLifetime: 160 * time.Second, flakyRefreshBefore: 80 * time.Second, outage: time.Minute,
	hangN:   200,
	fanoutN: 1000,
	outageN: 100, outageLifetime: time.Minute, hostOutage: time.Minute,
	timeout: 10 * time.Minute,
}

var scales = map[string]scale{
	"default": defaultScale,
	// large is the default with a burst of 5,000.
	"large": defaultScale.with(func(s *scale) {
		s.name, s.burstN, s.timeout = "large", 5000, 30*time.Minute
	}),
	// xl has 10,000 TokenRequests in the burst, and so in the restart, idle
	// and memory scenarios, which use the burst's. The refresh, flaky and
	// noisy-neighbour scenarios keep the default's sizes (they run beside
	// the 10,000 idle ones). So that the whole run fits in 15 minutes on 2
	// cores, the windows are shorter where the figures allow: the refresh
	// observations last a minute rather than two, the idle window 30 s (1%
	// of a core is then 300 ms of CPU time, far above the 10 ms /proc counts
	// in), and the flaky provider's outage 30 s, with 80 s tokens and a 40 s
	// window that still outlasts it. The fan-out keeps the default's 1,000
	// namespaces, as large does.
	"xl": defaultScale.with(func(s *scale) {
		s.name, s.burstN, s.timeout = "xl", 10000, 30*time.Minute
		s.refreshObserve, s.idleWindow = time.Minute, 30*time.Second
		s.flakyLifetime, s.flakyRefreshBefore, s.outage = 80*time.Second, 40*time.Second, 30*time.Second
	}),
	// tiny keeps the harness from rotting (go test): a few TokenRequests per
	// scenario, short windows; only exact counts are checked at this scale.
	"tiny": {
		name:     "tiny",
		latencyN: 3, burstN: 10, burstCreators: 4,
		idleWindow: 5 * time.Second,
		unrelatedN: 20, unrelatedBytes: 100 << 10, memorySettle: 2 * time.Second,
		refreshN: 3, refreshLifetime: 10 * time.Second, refreshObserve: 10 * time.Second,
		flakyN: 3, flakyLifetime: 24 * time.Second, flakyRefreshBefore: 10 * time.Second, outage: 4 * time.Second,
		hangN:   12,
		fanoutN: 5,
		outageN: 4, outageLifetime: 20 * time.Second, hostOutage: 8 * time.Second,
		timeout: 2 * time.Minute,
	},
}

// with returns a copy of s changed by change.
func (s scale) with(change func(*scale)) scale {
	change(&s)
	return s
}

func scaleNames() []string {
	names := slices.Collect(maps.Keys(scales))
	slices.Sort(names)
	return names
}
