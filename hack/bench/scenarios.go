package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// Namespaces and batches. Latency and burst use the partner API, the refresh
// scenarios AML Watcher and the flaky one AmpliFi, so that each can set its
// provider's token lifetime and faults without touching the others.
func (b *bench) latencyBatch(ns string) (batch, error) {
	return b.spread(batch{ns: ns, provider: providertest.Partner, prefix: "lat", n: b.sc.latencyN})
}

func (b *bench) burstBatch(ns string, n int) (batch, error) {
	return b.spread(batch{ns: ns, provider: providertest.Partner, prefix: "burst", n: n})
}

func (b *bench) flakyBatch() (batch, error) {
	return b.spread(batch{ns: "bench-flaky", provider: providertest.AmpliFi, prefix: "flaky", n: b.sc.flakyN, refreshBefore: b.sc.flakyRefreshBefore})
}

// spread gives tb endpoint hosts of its own, trsPerHost TokenRequests to a
// host.
func (b *bench) spread(tb batch) (batch, error) {
	var err error
	tb.endpoints, err = b.endpoints.hosts(hostsFor(tb.n))
	return tb, err
}

// newBatch creates tb's namespace and credentials Secrets, then waits a
// second so that the operator's metadata cache knows the credentials when
// the first reconcile comes: a TokenRequest racing its credentials is
// another scenario.
func (b *bench) newBatch(ctx context.Context, tb batch) error {
	if err := b.cl.createNamespace(ctx, tb.ns); err != nil {
		return err
	}
	if err := createCredentials(ctx, b.cl.client, tb); err != nil {
		return err
	}
	return sleep(ctx, time.Second)
}

// plainLatency measures scenario 1's limit with no manager running: the
// plain client's objects are deleted before it starts.
func (b *bench) plainLatency(ctx context.Context) error {
	plain := plainClient{c: b.cl.client}
	lat, err := b.latencyBatch("bench-plain-latency")
	if err != nil {
		return err
	}
	durations, err := b.createOneByOne(ctx, lat, plain.issue, nil)
	if err != nil {
		return err
	}
	b.rep.Latency.LimitP50, b.rep.Latency.LimitP99 = percentile(durations, 50), percentile(durations, 99)
	b.logf("plain client: latency p50 %s p99 %s", ms(b.rep.Latency.LimitP50), ms(b.rep.Latency.LimitP99))
	return b.deleteBatch(ctx, lat)
}

// createOneByOne creates tb (a new batch) one TokenRequest after another,
// each waited for until Ready, and returns each create→Ready time; issue,
// when set, is the plain client's work after the create. One more
// TokenRequest goes first, untimed, so that the costs of a first request
// (cold connections, the API server's first write of a kind) weigh on
// neither side; timed runs before the timed ones.
func (b *bench) createOneByOne(ctx context.Context, tb batch, issue func(context.Context, *tokensyncv1alpha1.TokenRequest) error, timed func() error) ([]time.Duration, error) {
	warmUp := tb
	warmUp.prefix, warmUp.n = tb.prefix+"-warmup", 1
	if err := b.cl.createNamespace(ctx, tb.ns); err != nil {
		return nil, err
	}
	for _, cb := range []batch{warmUp, tb} {
		if err := createCredentials(ctx, b.cl.client, cb); err != nil {
			return nil, err
		}
	}
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	createReady := func(tb batch, i int) (time.Duration, error) {
		tr := tb.tokenRequest(i)
		start := time.Now()
		if err := b.cl.client.Create(ctx, tr); err != nil {
			return 0, err
		}
		if issue != nil {
			if err := issue(ctx, tr); err != nil {
				return 0, err
			}
		}
		wctx, cancel := context.WithTimeout(ctx, b.sc.timeout)
		defer cancel()
		seen, err := b.obs.waitReady(wctx, tb.key(i))
		return seen.Sub(start), err
	}
	if _, err := createReady(warmUp, 0); err != nil {
		return nil, err
	}
	if timed != nil {
		if err := timed(); err != nil {
			return nil, err
		}
	}
	durations := make([]time.Duration, tb.n)
	for i := range tb.n {
		d, err := createReady(tb, i)
		if err != nil {
			return nil, err
		}
		durations[i] = d
	}
	return durations, nil
}

// plainBurst measures scenario 2's limit. The manager is stopped for it and
// started again after, so that limit and figure are measured minutes apart
// at most on a machine whose load may change.
func (b *bench) plainBurst(ctx context.Context) error {
	if err := b.stopManager(); err != nil {
		return err
	}
	// "The same API writes" as the operator's include its event.
	plain := plainClient{c: b.cl.client, event: true}
	// The bench's clients create the TokenRequests exactly as in scenario
	// 2, and as many plain workers as the operator has reconcilers take
	// them from a queue.
	burst, err := b.burstBatch("bench-plain-burst", b.sc.burstN)
	if err != nil {
		return err
	}
	if err := b.newBatch(ctx, burst); err != nil {
		return err
	}
	queue := make(chan *tokensyncv1alpha1.TokenRequest, burst.n)
	var g errgroup.Group
	start := time.Now()
	g.Go(func() error {
		defer close(queue)
		return parallel(ctx, burst.n, b.sc.burstCreators, func(ctx context.Context, i int) error {
			tr := burst.tokenRequest(i)
			if err := b.cl.client.Create(ctx, tr); err != nil {
				return err
			}
			queue <- tr
			return nil
		})
	})
	for range b.settings.workers {
		g.Go(func() error {
			for tr := range queue {
				if err := plain.issue(ctx, tr); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	lastReady, err := b.obs.waitFirstReady(ctx, burst, b.sc.timeout)
	if err != nil {
		return err
	}
	b.rep.Burst.Limit = lastReady.Sub(start)
	b.logf("plain client: burst of %d in %s", burst.n, secs(b.rep.Burst.Limit))
	if err := b.deleteBatch(ctx, burst); err != nil {
		return err
	}
	return b.startManager(ctx)
}

// latency is scenario 1: TokenRequests created one after another, each
// waited for until Ready.
func (b *bench) latency(ctx context.Context) error {
	lat, err := b.latencyBatch("bench-latency")
	if err != nil {
		return err
	}
	var before snapshot
	durations, err := b.createOneByOne(ctx, lat, nil, func() (err error) {
		before, err = b.snapshot(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if _, err := b.waitQuiet(ctx, 0); err != nil {
		return err
	}
	after, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	r := &b.rep.Latency
	r.N = lat.n
	r.P50, r.P99 = percentile(durations, 50), percentile(durations, 99)
	r.Requests = requestsPer{after.requests.since(before.requests), lat.n}
	r.Manager = managerSummary(before.manager, after.manager)
	b.rep.Logins.attemptsBefore = before.attempts
	b.rep.Logins.perTokenRequest = loginsPerIdentity(b.fake, lat)
	b.logf("operator: latency p50 %s p99 %s; API requests per TokenRequest: %s; manager: %s", ms(r.P50), ms(r.P99), r.Requests, r.Manager)
	return b.deleteBatch(ctx, lat)
}

// burstScenario is scenario 2: TokenRequests created at once.
func (b *bench) burstScenario(ctx context.Context) error {
	burst, err := b.burstBatch("bench-burst", b.sc.burstN)
	if err != nil {
		return err
	}
	if err := b.newBatch(ctx, burst); err != nil {
		return err
	}
	before, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	cpuBefore, err := b.managerCPU()
	if err != nil {
		return err
	}
	profiled := make(chan error, 1)
	go func() { profiled <- b.profile(ctx, "profile", 20, "burst.cpu.pprof") }()
	start := time.Now()
	lastReady, err := b.createAllReady(ctx, burst)
	if err != nil {
		return err
	}
	cpuAtReady, err := b.managerCPU()
	if err != nil {
		return err
	}
	if _, err := b.waitQuiet(ctx, 0); err != nil {
		return err
	}
	if err := <-profiled; err != nil {
		return err
	}
	after, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	r := &b.rep.Burst
	r.N, r.Creators, r.Hosts = burst.n, b.sc.burstCreators, len(burst.endpoints)
	r.Elapsed, r.CPU = lastReady.Sub(start), cpuAtReady-cpuBefore
	r.Peak = b.endpoints.peakPerSecond(burst.endpoints, start, lastReady)
	r.Requests = requestsPer{after.requests.since(before.requests), burst.n}
	r.Manager = managerSummary(before.manager, after.manager)
	b.rep.Logins.perTokenRequest = append(b.rep.Logins.perTokenRequest, loginsPerIdentity(b.fake, burst)...)
	b.logf("operator: burst of %d Ready in %s, manager CPU %s, peak %s; API requests per TokenRequest: %s; manager: %s",
		burst.n, secs(r.Elapsed), secs(r.CPU), r.Peak, r.Requests, r.Manager)
	return nil
}

// shardedBurst is scenario 2 again with the work shared out: the burst's
// TokenRequests spread evenly over opts.shards namespaces, each reconciled
// by a manager of its own (--namespaces, and a leader-election Lease of its
// own), as a very large fleet would run several Deployments. It runs last,
// with the run's manager stopped; its limit is scenario 2's plain client.
func (b *bench) shardedBurst(ctx context.Context) error {
	if err := b.stopManager(); err != nil {
		return err
	}
	shards := b.opts.shards
	r := &b.rep.Sharded
	r.Shards, r.N = shards, b.sc.burstN
	var batches []batch
	for k := range shards {
		n := b.sc.burstN*(k+1)/shards - b.sc.burstN*k/shards
		tb, err := b.burstBatch(fmt.Sprintf("bench-shard-%d", k), n)
		if err != nil {
			return err
		}
		if err := b.newBatch(ctx, tb); err != nil {
			return err
		}
		batches = append(batches, tb)
	}
	var managers []*managerProcess
	defer func() {
		for _, m := range managers {
			_ = m.stop()
		}
	}()
	for k, tb := range batches {
		b.gen++
		m, err := startManager(ctx, b.mcfg, b.gen, "--namespaces="+tb.ns, fmt.Sprintf("--leader-election-id=tokensync-shard-%d", k))
		if err != nil {
			return err
		}
		managers = append(managers, m)
	}
	start := time.Now()
	lastReady, err := b.createAllReady(ctx, batches...)
	if err != nil {
		return err
	}
	r.Elapsed = lastReady.Sub(start)
	for _, tb := range batches {
		for _, n := range loginsPerIdentity(b.fake, tb) {
			r.Logins += n
		}
	}
	b.logf("burst of %d over %d managers Ready in %s; %d logins", r.N, shards, secs(r.Elapsed), r.Logins)
	return nil
}

// createAllReady creates the batches' TokenRequests at once, with
// sc.burstCreators clients in all, and returns when the last of them was
// first seen Ready.
func (b *bench) createAllReady(ctx context.Context, batches ...batch) (time.Time, error) {
	type item struct {
		tb batch
		i  int
	}
	var items []item
	for i := 0; ; i++ {
		added := false
		for _, tb := range batches {
			if i < tb.n {
				items, added = append(items, item{tb, i}), true
			}
		}
		if !added {
			break
		}
	}
	err := parallel(ctx, len(items), b.sc.burstCreators, func(ctx context.Context, k int) error {
		it := items[k]
		if err := b.cl.client.Create(ctx, it.tb.tokenRequest(it.i)); err != nil {
			return fmt.Errorf("create TokenRequest %s/%s: %w", it.tb.ns, it.tb.name(it.i), err)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for _, tb := range batches {
		t, err := b.obs.waitFirstReady(ctx, tb, b.sc.timeout)
		if err != nil {
			return last, err
		}
		if t.After(last) {
			last = t
		}
	}
	return last, nil
}

// loginsCheck is scenario 3's first half: one login per TokenRequest
// during scenarios 1 and 2.
func (b *bench) loginsCheck(ctx context.Context) error {
	now, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	r := &b.rep.Logins
	// Scenarios 1 and 2 are the only logins so far (the plain client logs
	// in nowhere): every attempt since is theirs.
	r.Attempts = now.attempts - r.attemptsBefore
	r.TokenRequests = len(r.perTokenRequest)
	r.Min, r.Max = slices.Min(r.perTokenRequest), slices.Max(r.perTokenRequest)
	for _, n := range r.perTokenRequest {
		r.Logins += n
	}
	b.logf("%d logins (%d attempts) for %d TokenRequests (min %d, max %d per TokenRequest)", r.Logins, r.Attempts, r.TokenRequests, r.Min, r.Max)
	return nil
}

// restart is scenario 3's second half: a new manager finds every token valid.
func (b *bench) restart(ctx context.Context) error {
	n, err := b.countTokenRequests(ctx)
	if err != nil {
		return err
	}
	before, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	if err := b.stopManager(); err != nil {
		return err
	}
	start := time.Now()
	if err := b.startManager(ctx); err != nil {
		return err
	}
	r := &b.rep.Restart
	r.Leading = time.Since(start)
	quietAt, err := b.waitQuiet(ctx, n)
	if err != nil {
		return err
	}
	r.Elapsed = quietAt.Sub(start)
	// Late writes would come from requeues, which are seconds away at most.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	after, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	d := after.requests.since(before.requests)
	r.TokenRequests, r.Logins = n, after.attempts-before.attempts
	r.Reconciles = int(after.manager.value("controller_runtime_reconcile_total", map[string]string{"controller": "tokenrequest"}))
	r.SecretWrites, r.TokenRequestWrites, r.EventWrites = d.writes("secrets"), d.writes("tokenrequests"), d.writes("events")
	b.logf("restart: leading after %s, %d TokenRequests reconciled (%d reconciles) and the queue empty after %s; %d logins, %d Secret writes, %d TokenRequest writes, %d events",
		secs(r.Leading), r.TokenRequests, r.Reconciles, secs(r.Elapsed), r.Logins, r.SecretWrites, r.TokenRequestWrites, r.EventWrites)
	return nil
}

// idle is scenario 4: Ready TokenRequests with long-lived tokens, watched
// for a while. The bench makes no request to the manager or the API server
// in the window, so all the CPU and every write are the manager's.
func (b *bench) idle(ctx context.Context) error {
	n, err := b.countTokenRequests(ctx)
	if err != nil {
		return err
	}
	before, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	cpuBefore, err := b.managerCPU()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := sleep(ctx, b.sc.idleWindow); err != nil {
		return err
	}
	window := time.Since(start)
	cpuAfter, err := b.managerCPU()
	if err != nil {
		return err
	}
	after, err := b.snapshot(ctx)
	if err != nil {
		return err
	}
	d := after.requests.since(before.requests)
	r := &b.rep.Idle
	r.TokenRequests, r.Window, r.CPU = n, window, cpuAfter-cpuBefore
	r.Logins = after.attempts - before.attempts
	r.Writes = d.writes("secrets", "tokenrequests", "events")
	b.logf("idle: %d logins, %d writes, %d lease renewals (manager's and API server's), CPU %s over %s (%.2f%% of a core)",
		r.Logins, r.Writes, d.writes("leases"), secs(r.CPU), secs(window), r.CPUShare()*100)
	return nil
}

func (b *bench) countTokenRequests(ctx context.Context) (int, error) {
	list := &tokensyncv1alpha1.TokenRequestList{}
	err := b.cl.client.List(ctx, list)
	return len(list.Items), err
}

// emptyHeap is the manager's heap in use before any TokenRequest exists,
// so that scenario 5 can tell what the TokenRequests add to it.
func (b *bench) emptyHeap(ctx context.Context) error {
	mem, err := b.memoryNow(ctx)
	b.rep.Memory.Empty = mem
	return err
}

// memory is scenario 5: the manager's heap and RSS, before and after
// unrelated Secrets are added to the cluster.
func (b *bench) memory(ctx context.Context) error {
	r := &b.rep.Memory
	var err error
	if r.TokenRequests, err = b.countTokenRequests(ctx); err != nil {
		return err
	}
	if r.Before, err = b.memoryNow(ctx); err != nil {
		return err
	}
	// gc=1 collects first, so the profiles show what stays live.
	if err := b.profile(ctx, "heap?gc=1", 0, "memory-before.heap.pprof"); err != nil {
		return err
	}
	ns := "bench-unrelated"
	if err := b.cl.createNamespace(ctx, ns); err != nil {
		return err
	}
	r.Unrelated, r.UnrelatedBytes = b.sc.unrelatedN, int64(b.sc.unrelatedN)*int64(b.sc.unrelatedBytes)
	err = parallel(ctx, b.sc.unrelatedN, 16, func(ctx context.Context, i int) error {
		data := make([]byte, b.sc.unrelatedBytes)
		_, _ = rand.Read(data)
		return b.cl.client.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%05d", i), Namespace: ns, Labels: map[string]string{"app": "unrelated"}},
			Data:       map[string][]byte{"blob": data},
		})
	})
	if err != nil {
		return fmt.Errorf("create unrelated Secrets: %w", err)
	}
	// The manager's watches deliver the new Secrets within moments; give its
	// caches time to take them and its heap to settle.
	if err := sleep(ctx, b.sc.memorySettle); err != nil {
		return err
	}
	if r.After, err = b.memoryNow(ctx); err != nil {
		return err
	}
	if err := b.profile(ctx, "heap?gc=1", 0, "memory-after.heap.pprof"); err != nil {
		return err
	}
	b.logf("memory: live heap %s → %s, heap in use %s → %s, RSS %s → %s after %d unrelated Secrets (%s)",
		mib(r.Before.Live), mib(r.After.Live), mib(r.Before.InUse), mib(r.After.InUse), mib(r.Before.RSS), mib(r.After.RSS), r.Unrelated, mib(r.UnrelatedBytes))
	return nil
}

// memoryNow reads the manager's memory just after a garbage collection:
// the live heap that collection marked, the heap in use and the RSS. The
// bench cannot force a collection, but each /metrics scrape allocates in
// the manager, so scraping brings the next one on. Each figure is the median
// of three such readings.
func (b *bench) memoryNow(ctx context.Context) (memoryReading, error) {
	var lives, inUses, rsses []int64
	for range 3 {
		m, err := b.mgr.metrics()
		if err != nil {
			return memoryReading{}, err
		}
		collections := m.observations("go_gc_duration_seconds", nil)
		err = wait.PollUntilContextTimeout(ctx, 0, time.Minute, true, func(context.Context) (bool, error) {
			m, err = b.mgr.metrics()
			return err == nil && m.observations("go_gc_duration_seconds", nil) > collections, err
		})
		if err != nil {
			return memoryReading{}, fmt.Errorf("scrape the manager until it collects garbage: %w", err)
		}
		r, err := b.machine.rss(b.mgr.pid())
		if err != nil {
			return memoryReading{}, err
		}
		lives = append(lives, int64(m.value("go_gc_heap_live_bytes", nil)))
		inUses = append(inUses, int64(m.value("go_memstats_heap_inuse_bytes", nil)))
		rsses = append(rsses, r)
	}
	median := func(v []int64) int64 { slices.Sort(v); return v[1] }
	return memoryReading{Live: median(lives), InUse: median(inUses), RSS: median(rsses)}, nil
}

// flaky is scenario 7: TokenRequests whose tokens come due while the
// provider fails half its calls.
func (b *bench) flaky(ctx context.Context) error {
	fb, err := b.flakyBatch()
	if err != nil {
		return err
	}
	b.fake.SetLifetime(fb.provider, b.sc.flakyLifetime)
	b.obs.trackSecretsIn(fb.ns)
	if err := b.newBatch(ctx, fb); err != nil {
		return err
	}
	samples := b.obs.sample(ctx, fb.ns)
	if err := b.createTokenRequests(ctx, fb, 16); err != nil {
		return err
	}
	if _, err := b.obs.waitFirstReady(ctx, fb, b.sc.timeout); err != nil {
		return err
	}
	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := b.cl.client.List(ctx, list, client.InNamespace(fb.ns)); err != nil {
		return err
	}
	var firstDue time.Time
	for _, tr := range list.Items {
		if t := tr.Status.NextRefreshTime; t != nil && (firstDue.IsZero() || t.Time.Before(firstDue)) {
			firstDue = t.Time
		}
	}
	b.logf("flaky: %d TokenRequests Ready; first refresh due in %s", fb.n, secs(time.Until(firstDue)))
	return b.flakyOutage(ctx, fb, firstDue, samples)
}

// watched sums up what the observer saw of tb's Secrets: their tokens, the
// samples, the logins the fake counted for tb.
func (b *bench) watched(tb batch, looks secretSamples) ([][]tokenSeen, secretWatch) {
	tokens, clobbered := b.obs.histories(tb)
	w := secretWatch{Samples: looks.total(), Expired: looks.expired, Empty: looks.empty, Clobbered: clobbered}
	for _, h := range tokens {
		w.Tokens += len(h)
	}
	for _, n := range loginsPerIdentity(b.fake, tb) {
		w.Logins += n
	}
	return tokens, w
}

// flakyOutage is scenario 7: just before the flaky batch's tokens come due,
// the provider starts failing every other call with 503, for outage.
func (b *bench) flakyOutage(ctx context.Context, fb batch, firstDue time.Time, samples func() secretSamples) error {
	lead := 3 * time.Second
	if b.sc.outage < 20*time.Second {
		lead = time.Second
	}
	if err := sleep(ctx, time.Until(firstDue.Add(-lead))); err != nil {
		return err
	}
	attempts, logins := b.fake.Attempts(fb.provider), b.fake.Logins(fb.provider)
	outageStart := time.Now()
	// Tokens issued from now on live an hour, so that no TokenRequest
	// refreshed early comes due again before the last one is refreshed:
	// the counts are then those of one refresh each.
	b.fake.SetLifetime(fb.provider, time.Hour)
	b.fake.FailEvery(fb.provider, 2, providertest.Failure{Status: 503})
	b.logf("flaky: provider failing every other call for %s", b.sc.outage)
	if err := sleep(ctx, b.sc.outage); err != nil {
		return err
	}
	b.fake.FailEvery(fb.provider, 0, providertest.Failure{})
	healed := time.Now()
	r := &b.rep.Flaky
	r.N, r.Outage = fb.n, b.sc.outage
	r.AttemptsInOutage = b.fake.Attempts(fb.provider) - attempts
	// Those not Ready at the heal wait for their pending retry, no longer
	// than the backoff after their last failure.
	for _, s := range b.obs.states(fb) {
		if !s.ready {
			r.RecoveryLimit = max(r.RecoveryLimit, backoffCeiling(s.failedAttempts))
		}
	}

	// All Ready, and every token refreshed once: then the counts are final.
	refreshed := 0
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, b.sc.timeout, true, func(context.Context) (bool, error) {
		tokens, _ := b.obs.histories(fb)
		refreshed = 0
		for _, h := range tokens {
			if len(h) >= 2 {
				refreshed++
			}
		}
		return refreshed == fb.n && b.obs.countReady(fb) == fb.n, nil
	})
	if err != nil {
		return fmt.Errorf("flaky: %d of %d Ready and %d refreshed after the provider healed: %w", b.obs.countReady(fb), fb.n, refreshed, err)
	}
	for _, s := range b.obs.states(fb) {
		r.Recovery = max(r.Recovery, s.readySince.Sub(healed))
	}
	end := time.Now()
	_, r.secretWatch = b.watched(fb, samples())
	r.Attempts = b.fake.Attempts(fb.provider) - attempts
	r.LoginsSinceOutage = b.fake.Logins(fb.provider) - logins
	r.AttemptBound = fb.n * maxAttempts(end.Sub(outageStart))
	b.logf("flaky: %d attempts (%d in the outage, bound %d), %d logins; %d of %d samples expired, %d clobbered; all Ready %s after the heal (limit %s)",
		r.Attempts, r.AttemptsInOutage, r.AttemptBound, r.LoginsSinceOutage, r.Expired, r.Samples, r.Clobbered, secs(r.Recovery), secs(r.RecoveryLimit))
	return nil
}

// The operator's documented retry policy after a failed login
// (controllers/backoff.go): 5s doubling to 5m, shortened by up to 25%.
const (
	backoffBase   = 5 * time.Second
	backoffCap    = 5 * time.Minute
	backoffJitter = 0.25
)

// backoffCeiling is the longest wait after the failed-th consecutive failure.
func backoffCeiling(failed int32) time.Duration {
	d := backoffBase
	for i := int32(1); i < failed && d < backoffCap; i++ {
		d *= 2
	}
	return min(d, backoffCap)
}

// maxAttempts is the most logins one TokenRequest may attempt within d of
// its first, every retry waiting the shortest its backoff allows.
func maxAttempts(d time.Duration) int {
	n, at := 1, time.Duration(0)
	for failed := int32(1); ; failed++ {
		at += time.Duration(float64(backoffCeiling(failed)) * (1 - backoffJitter))
		if at > d {
			return n
		}
		n++
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	// Nearest rank.
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}
