package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// Namespaces and batches. Latency and burst use the partner API, the refresh
// scenario AML Watcher and the flaky one AmpliFi, so that each can set its
// provider's token lifetime and faults without touching the others.
func (b *bench) latencyBatch(ns string) batch {
	return batch{ns: ns, provider: providertest.Partner, prefix: "lat", n: b.sc.latencyN}
}

func (b *bench) burstBatch(ns string) batch {
	return batch{ns: ns, provider: providertest.Partner, prefix: "burst", n: b.sc.burstN}
}

func (b *bench) refreshBatch() batch {
	return batch{ns: "bench-refresh", provider: providertest.AML, prefix: "refresh", n: b.sc.refreshN, refreshBefore: b.sc.refreshBefore}
}

func (b *bench) flakyBatch() batch {
	return batch{ns: "bench-flaky", provider: providertest.AmpliFi, prefix: "flaky", n: b.sc.flakyN, refreshBefore: b.sc.flakyRefreshBefore}
}

func (b *bench) newBatch(ctx context.Context, tb batch) error {
	if err := b.cl.createNamespace(ctx, tb.ns); err != nil {
		return err
	}
	return createCredentials(ctx, b.cl.client, tb)
}

// plainLatency measures scenario 1's limit with no manager running: the
// plain client's objects are deleted before it starts.
func (b *bench) plainLatency(ctx context.Context) error {
	plain := plainClient{c: b.cl.client}
	lat := b.latencyBatch("bench-plain-latency")
	if err := b.newBatch(ctx, lat); err != nil {
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

// createOneByOne creates tb's TokenRequests one after another, each waited
// for until Ready, and returns each create→Ready time; issue, when set, is
// the plain client's work after the create. One more TokenRequest goes
// first, untimed, so that the costs of a first request (cold connections,
// the API server's first write of a kind) weigh on neither side; timed runs
// before the timed ones.
func (b *bench) createOneByOne(ctx context.Context, tb batch, issue func(context.Context, *tokensyncv1alpha1.TokenRequest) error, timed func()) ([]time.Duration, error) {
	warmUp := batch{ns: tb.ns, provider: tb.provider, prefix: tb.prefix + "-warmup", n: 1}
	if err := createCredentials(ctx, b.cl.client, warmUp); err != nil {
		return nil, err
	}
	// Let the operator's metadata cache see the credentials first: a
	// TokenRequest racing its credentials is another scenario.
	time.Sleep(time.Second)
	createReady := func(tb batch, i int) (time.Duration, error) {
		tr := tb.tokenRequest(i, b.fake.URL())
		start := time.Now()
		if err := b.cl.client.Create(ctx, tr); err != nil {
			return 0, err
		}
		if issue != nil {
			if err := issue(ctx, tr); err != nil {
				return 0, err
			}
		}
		seen, err := b.waitReady(ctx, client.ObjectKeyFromObject(tr))
		return seen.Sub(start), err
	}
	if _, err := createReady(warmUp, 0); err != nil {
		return nil, err
	}
	if timed != nil {
		timed()
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
	if b.mgr != nil {
		if err := b.mgr.stop(); err != nil {
			return err
		}
		b.mgr = nil
	}
	// "The same API writes" as the operator's include its event.
	plain := plainClient{c: b.cl.client, event: true}
	// The bench's clients create the TokenRequests exactly as in scenario
	// 2, and as many plain workers as the operator has reconcilers take
	// them from a queue.
	burst := b.burstBatch("bench-plain-burst")
	if err := b.newBatch(ctx, burst); err != nil {
		return err
	}
	queue := make(chan *tokensyncv1alpha1.TokenRequest, burst.n)
	var g waitGroupErr
	start := time.Now()
	g.Go(func() error {
		defer close(queue)
		return parallel(ctx, burst.n, b.sc.burstCreators, func(ctx context.Context, i int) error {
			tr := burst.tokenRequest(i, b.fake.URL())
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
	if err := b.obs.waitFirstReady(ctx, burst, b.sc.timeout); err != nil {
		return err
	}
	b.rep.Burst.Limit = b.lastFirstReady(burst).Sub(start)
	b.logf("plain client: burst of %d in %s", burst.n, secs(b.rep.Burst.Limit))
	if err := b.deleteBatch(ctx, burst); err != nil {
		return err
	}
	return b.startManager(ctx)
}

// latency is scenario 1: TokenRequests created one after another, each
// waited for until Ready.
func (b *bench) latency(ctx context.Context) error {
	lat := b.latencyBatch("bench-latency")
	if err := b.newBatch(ctx, lat); err != nil {
		return err
	}
	var (
		before      requestCounts
		statsBefore managerStats
		readErr     error
	)
	durations, err := b.createOneByOne(ctx, lat, nil, func() {
		b.rep.Logins.attemptsBefore = b.fake.Attempts(lat.provider)
		var err1, err2 error
		before, err1 = b.cl.requestCounts(ctx)
		statsBefore, err2 = b.managerStatsNow()
		readErr = errors.Join(err1, err2)
	})
	if err := errors.Join(err, readErr); err != nil {
		return err
	}
	if err := b.waitQuiet(ctx, 0); err != nil {
		return err
	}
	after, err := b.cl.requestCounts(ctx)
	if err != nil {
		return err
	}
	statsAfter, err := b.managerStatsNow()
	if err != nil {
		return err
	}
	r := &b.rep.Latency
	r.Manager = statsAfter.since(statsBefore).String()
	r.N = lat.n
	r.P50, r.P99 = percentile(durations, 50), percentile(durations, 99)
	r.Requests = perTokenRequest(after.since(before), lat.n)
	r.logins = loginsPerIdentity(b.fake, lat)
	b.logf("operator: latency p50 %s p99 %s; API requests per TokenRequest: %s; manager: %s", ms(r.P50), ms(r.P99), r.Requests, r.Manager)
	return b.deleteBatch(ctx, lat)
}

// burstScenario is scenario 2: TokenRequests created at once.
func (b *bench) burstScenario(ctx context.Context) error {
	burst := b.burstBatch("bench-burst")
	if err := b.newBatch(ctx, burst); err != nil {
		return err
	}
	time.Sleep(time.Second)
	before, err := b.cl.requestCounts(ctx)
	if err != nil {
		return err
	}
	cpuBefore, err := b.mgr.cpuTime()
	if err != nil {
		return err
	}
	statsBefore, err := b.managerStatsNow()
	if err != nil {
		return err
	}
	profiled := make(chan error, 1)
	go func() {
		_, err := b.profile(ctx, "profile", 20, "burst.cpu.pprof")
		profiled <- err
	}()
	start := time.Now()
	if _, err := b.createTokenRequests(ctx, burst, b.sc.burstCreators); err != nil {
		return err
	}
	created := time.Since(start)
	if err := b.obs.waitFirstReady(ctx, burst, b.sc.timeout); err != nil {
		return err
	}
	r := &b.rep.Burst
	r.Elapsed = b.lastFirstReady(burst).Sub(start)
	cpuAfter, err := b.mgr.cpuTime()
	if err != nil {
		return err
	}
	if err := b.waitQuiet(ctx, 0); err != nil {
		return err
	}
	after, err := b.cl.requestCounts(ctx)
	if err != nil {
		return err
	}
	if err := <-profiled; err != nil {
		return err
	}
	statsAfter, err := b.managerStatsNow()
	if err != nil {
		return err
	}
	r.Manager = statsAfter.since(statsBefore).String()
	r.N, r.Creators, r.Created, r.Settings = burst.n, b.sc.burstCreators, created, b.settings
	r.CPU = cpuAfter - cpuBefore
	r.Requests = perTokenRequest(after.since(before), burst.n)
	b.logf("operator: burst of %d Ready in %s (created in %s), manager CPU %s; API requests per TokenRequest: %s; manager: %s",
		burst.n, secs(r.Elapsed), secs(created), secs(r.CPU), r.Requests, r.Manager)
	b.rep.Logins.burst = loginsPerIdentity(b.fake, burst)
	return nil
}

// loginsCheck is scenario 3's first half: one login per TokenRequest
// during scenarios 1 and 2.
func (b *bench) loginsCheck(context.Context) error {
	r := &b.rep.Logins
	// Scenarios 1 and 2 are the only partner API users so far, and the
	// plain client logs in nowhere: every attempt since is theirs.
	r.Attempts = b.fake.Attempts(providertest.Partner) - r.attemptsBefore
	all := append(slices.Clone(b.rep.Latency.logins), r.burst...)
	r.TokenRequests = len(all)
	r.Min, r.Max = all[0], all[0]
	for _, n := range all {
		r.Logins += n
		r.Min, r.Max = min(r.Min, n), max(r.Max, n)
	}
	b.logf("%d logins (%d attempts) for %d TokenRequests (min %d, max %d per TokenRequest)", r.Logins, r.Attempts, r.TokenRequests, r.Min, r.Max)
	return nil
}

// restart is scenario 3's second half: a new manager finds every token valid.
func (b *bench) restart(ctx context.Context) error {
	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := b.cl.client.List(ctx, list); err != nil {
		return err
	}
	before, err := b.cl.requestCounts(ctx)
	if err != nil {
		return err
	}
	attempts := b.loginAttempts()
	if err := b.mgr.stop(); err != nil {
		return err
	}
	start := time.Now()
	if err := b.startManager(ctx); err != nil {
		return err
	}
	if err := b.waitQuiet(ctx, len(list.Items)); err != nil {
		return err
	}
	r := &b.rep.Restart
	r.Elapsed = time.Since(start)
	// Late writes would come from requeues, which are seconds away at most.
	time.Sleep(2 * time.Second)
	after, err := b.cl.requestCounts(ctx)
	if err != nil {
		return err
	}
	d := after.since(before)
	r.TokenRequests = len(list.Items)
	r.Logins = b.loginAttempts() - attempts
	r.SecretWrites = d.writes("secrets")
	r.TokenRequestWrites = d.writes("tokenrequests")
	r.EventWrites = d.writes("events")
	b.logf("restart: %d TokenRequests re-read in %s; %d logins, %d Secret writes, %d TokenRequest writes, %d events",
		r.TokenRequests, secs(r.Elapsed), r.Logins, r.SecretWrites, r.TokenRequestWrites, r.EventWrites)
	return nil
}

// idle is scenario 4: Ready TokenRequests with long-lived tokens, watched
// for a while. The bench makes no request to the manager or the API server
// in the window, so all the CPU and every write are the manager's.
func (b *bench) idle(ctx context.Context) error {
	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := b.cl.client.List(ctx, list); err != nil {
		return err
	}
	before, err := b.cl.requestCounts(ctx)
	if err != nil {
		return err
	}
	attempts := b.loginAttempts()
	cpuBefore, err := b.mgr.cpuTime()
	if err != nil {
		return err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.sc.idleWindow):
	}
	cpuAfter, err := b.mgr.cpuTime()
	if err != nil {
		return err
	}
	window := time.Since(start)
	after, err := b.cl.requestCounts(ctx)
	if err != nil {
		return err
	}
	d := after.since(before)
	r := &b.rep.Idle
	r.TokenRequests, r.Window = len(list.Items), window
	r.Logins = b.loginAttempts() - attempts
	r.Writes = d.writes("secrets", "tokenrequests", "events")
	r.LeaseWrites = d.writes("leases")
	r.CPU = cpuAfter - cpuBefore
	b.logf("idle: %d logins, %d writes, %d lease renewals (manager's and API server's), CPU %s over %s (%.2f%% of a core)",
		r.Logins, r.Writes, r.LeaseWrites, secs(r.CPU), secs(window), r.CPUShare()*100)
	return nil
}

// memory is scenario 5: the manager's heap and RSS, before and after
// unrelated Secrets are added to the cluster.
func (b *bench) memory(ctx context.Context) error {
	r := &b.rep.Memory
	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := b.cl.client.List(ctx, list); err != nil {
		return err
	}
	r.TokenRequests = len(list.Items)
	var err error
	if r.HeapBefore, r.RSSBefore, err = b.memoryNow(ctx); err != nil {
		return err
	}
	if _, err := b.profile(ctx, "heap?gc=1", 0, "memory-before.heap.pprof"); err != nil {
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
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%05d", i), Namespace: ns, Labels: map[string]string{"app": "unrelated"}},
			Data:       map[string][]byte{"blob": data},
		}
		return b.cl.client.Create(ctx, s)
	})
	if err != nil {
		return fmt.Errorf("create unrelated Secrets: %w", err)
	}
	// The manager's watches deliver the new Secrets within moments; give its
	// caches time to take them and its heap to settle.
	time.Sleep(b.sc.memorySettle)
	if r.HeapAfter, r.RSSAfter, err = b.memoryNow(ctx); err != nil {
		return err
	}
	// gc=1 collects first, so the profile shows what stays live.
	if _, err := b.profile(ctx, "heap?gc=1", 0, "memory-after.heap.pprof"); err != nil {
		return err
	}
	b.logf("memory: heap %s → %s, RSS %s → %s after %d unrelated Secrets (%s)",
		mib(r.HeapBefore), mib(r.HeapAfter), mib(r.RSSBefore), mib(r.RSSAfter), r.Unrelated, mib(r.UnrelatedBytes))
	return nil
}

// memoryNow is the manager's heap in use, read just after a garbage
// collection so that garbage not yet collected does not count as growth,
// and its RSS. The bench cannot force a collection, but each /metrics scrape
// allocates in the manager, so scraping brings the next one on. The figures
// are the median of three such readings.
func (b *bench) memoryNow(ctx context.Context) (heap, rss int64, err error) {
	var heaps, rsses []int64
	for range 3 {
		s, err := b.mgr.metrics()
		if err != nil {
			return 0, 0, err
		}
		collections := sumOf(s, "go_gc_duration_seconds_count", nil)
		deadline := time.Now().Add(time.Minute)
		for sumOf(s, "go_gc_duration_seconds_count", nil) == collections {
			if time.Now().After(deadline) {
				return 0, 0, fmt.Errorf("the manager did not collect garbage within a minute of scraping")
			}
			if err := ctx.Err(); err != nil {
				return 0, 0, err
			}
			if s, err = b.mgr.metrics(); err != nil {
				return 0, 0, err
			}
		}
		r, err := b.mgr.rss()
		if err != nil {
			return 0, 0, err
		}
		heaps = append(heaps, int64(sumOf(s, "go_memstats_heap_inuse_bytes", nil)))
		rsses = append(rsses, r)
	}
	slices.Sort(heaps)
	slices.Sort(rsses)
	return heaps[1], rsses[1], nil
}

// refreshAndFlaky runs scenarios 6 and 7 together: the flaky scenario's
// TokenRequests are created first and sit idle, waiting to come due, while
// the refresh scenario runs on another provider.
func (b *bench) refreshAndFlaky(ctx context.Context) error {
	flaky := b.flakyBatch()
	b.fake.SetLifetime(flaky.provider, b.sc.flakyLifetime)
	b.obs.trackSecretsIn(flaky.ns)
	if err := b.newBatch(ctx, flaky); err != nil {
		return err
	}
	time.Sleep(time.Second)
	flakySamples := b.sampleSecrets(ctx, flaky.ns)
	if _, err := b.createTokenRequests(ctx, flaky, 16); err != nil {
		return err
	}
	if err := b.obs.waitFirstReady(ctx, flaky, b.sc.timeout); err != nil {
		return err
	}
	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := b.cl.client.List(ctx, list, client.InNamespace(flaky.ns)); err != nil {
		return err
	}
	var firstDue time.Time
	for _, tr := range list.Items {
		if t := tr.Status.NextRefreshTime; t != nil && (firstDue.IsZero() || t.Time.Before(firstDue)) {
			firstDue = t.Time
		}
	}
	b.logf("flaky: %d TokenRequests Ready; first refresh due in %s", flaky.n, secs(time.Until(firstDue)))

	var g waitGroupErr
	g.Go(func() error { return b.flakyOutage(ctx, flaky, firstDue, flakySamples) })
	g.Go(func() error { return b.refreshAccuracy(ctx) })
	return g.Wait()
}

// refreshAccuracy is scenario 6: short-lived tokens, each Secret's token
// checked every 250 ms.
func (b *bench) refreshAccuracy(ctx context.Context) error {
	rb := b.refreshBatch()
	b.fake.SetLifetime(rb.provider, b.sc.refreshLifetime)
	b.obs.trackSecretsIn(rb.ns)
	if err := b.newBatch(ctx, rb); err != nil {
		return err
	}
	time.Sleep(time.Second)
	statsBefore, err := b.managerStatsNow()
	if err != nil {
		return err
	}
	before, err := b.cl.requestCounts(ctx)
	if err != nil {
		return err
	}
	logins := b.fake.Logins(rb.provider)
	samples := b.sampleSecrets(ctx, rb.ns)
	start := time.Now()
	if _, err := b.createTokenRequests(ctx, rb, 16); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(start.Add(b.sc.refreshObserve))):
	}
	totals := samples()
	statsAfter, err := b.managerStatsNow()
	if err != nil {
		return err
	}
	after, err := b.cl.requestCounts(ctx)
	if err != nil {
		return err
	}
	loginsInWindow := b.fake.Logins(rb.provider) - logins

	// Wind down so that logins and stored tokens can be counted exactly:
	// from now on tokens live an hour, so each TokenRequest refreshes once
	// more at most and then holds a token that is not due.
	b.fake.SetLifetime(rb.provider, time.Hour)
	settle := time.Now().Add(b.sc.refreshLifetime + time.Minute)
	for {
		longLived := 0
		for i := range rb.n {
			h, _ := b.obs.tokenHistory(types.NamespacedName{Namespace: rb.ns, Name: rb.name(i)})
			if len(h) > 0 && time.Until(h[len(h)-1].expiry) > 30*time.Minute {
				longLived++
			}
		}
		if longLived == rb.n {
			break
		}
		if time.Now().After(settle) {
			return fmt.Errorf("refresh: only %d of %d Secrets hold a long-lived token %s after the lifetime changed", longLived, rb.n, b.sc.refreshLifetime+time.Minute)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := b.waitQuiet(ctx, 0); err != nil {
		return err
	}

	r := &b.rep.Refresh
	r.N, r.Lifetime, r.Observe = rb.n, b.sc.refreshLifetime, b.sc.refreshObserve
	// The flaky scenario's TokenRequests sit idle meanwhile, so the
	// manager's figures are this scenario's.
	r.Manager = statsAfter.since(statsBefore).String()
	// The bench created the TokenRequests; the rest is the operator's.
	r.Requests = perTokenRequest(after.since(before), loginsInWindow)
	r.Samples, r.Expired, r.Empty = totals.holding+totals.expired+totals.empty, totals.expired, totals.empty
	first := true
	for i := range rb.n {
		h, clobbered := b.obs.tokenHistory(types.NamespacedName{Namespace: rb.ns, Name: rb.name(i)})
		r.Clobbered += clobbered
		r.Tokens += len(h)
		for j := 1; j < len(h); j++ {
			offset := h[j].at.Sub(h[j-1].expiry)
			if first || offset < r.Earliest {
				r.Earliest = offset
			}
			if first || offset > r.Latest {
				r.Latest = offset
			}
			first = false
		}
	}
	for _, n := range loginsPerIdentity(b.fake, rb) {
		r.Logins += n
	}
	b.logf("refresh: %d of %d samples expired, %d empty; refreshes %s to %s relative to expiry; %d logins for %d tokens stored; manager: %s",
		r.Expired, r.Samples, r.Empty, signedSecs(r.Earliest), signedSecs(r.Latest), r.Logins, r.Tokens, r.Manager)
	return nil
}

// flakyOutage is scenario 7: just before the flaky batch's tokens come due,
// the provider starts failing every other call with 503, for outage.
func (b *bench) flakyOutage(ctx context.Context, fb batch, firstDue time.Time, samples func() secretSample) error {
	lead := 3 * time.Second
	if b.sc.outage < 20*time.Second {
		lead = time.Second
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(firstDue.Add(-lead))):
	}
	attempts, logins := b.fake.Attempts(fb.provider), b.fake.Logins(fb.provider)
	outageStart := time.Now()
	b.fake.FailEvery(fb.provider, 2, providertest.Failure{Status: 503})
	b.logf("flaky: provider failing every other call for %s", b.sc.outage)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.sc.outage):
	}
	b.fake.FailEvery(fb.provider, 0, providertest.Failure{})
	healed := time.Now()
	r := &b.rep.Flaky
	r.N, r.Outage = fb.n, b.sc.outage
	r.AttemptsInOutage = b.fake.Attempts(fb.provider) - attempts
	// Those not Ready at the heal wait for their pending retry, no longer
	// than the backoff after their last failure.
	for _, failed := range b.obs.notReady(fb) {
		r.RecoveryLimit = max(r.RecoveryLimit, backoffCeiling(failed))
	}

	// All Ready, and every token refreshed once: then the counts are final.
	deadline := healed.Add(b.sc.timeout)
	for {
		refreshed := 0
		for i := range fb.n {
			h, _ := b.obs.tokenHistory(types.NamespacedName{Namespace: fb.ns, Name: fb.name(i)})
			if len(h) >= 2 {
				refreshed++
			}
		}
		if b.obs.countReady(fb) == fb.n && refreshed == fb.n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("flaky: %d of %d Ready and %d refreshed %s after the provider healed", b.obs.countReady(fb), fb.n, refreshed, b.sc.timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, t := range b.obs.readySince(fb) {
		r.Recovery = max(r.Recovery, t.Sub(healed))
	}
	end := time.Now()
	totals := samples()
	r.Attempts = b.fake.Attempts(fb.provider) - attempts
	r.Logins = b.fake.Logins(fb.provider) - logins
	r.AttemptBound = fb.n * maxAttempts(end.Sub(outageStart))
	r.Samples, r.Expired, r.Empty = totals.holding+totals.expired+totals.empty, totals.expired, totals.empty
	for i := range fb.n {
		h, clobbered := b.obs.tokenHistory(types.NamespacedName{Namespace: fb.ns, Name: fb.name(i)})
		r.Clobbered += clobbered
		r.Tokens += len(h)
	}
	for _, n := range loginsPerIdentity(b.fake, fb) {
		r.TotalLogins += n
	}
	b.logf("flaky: %d attempts (%d in the outage, bound %d), %d logins; %d of %d samples expired, %d clobbered; all Ready %s after the heal (limit %s)",
		r.Attempts, r.AttemptsInOutage, r.AttemptBound, r.Logins, r.Expired, r.Samples, r.Clobbered, secs(r.Recovery), secs(r.RecoveryLimit))
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

// sampleSecrets looks at ns's Secrets every 250 ms until the returned
// function is called, which returns the totals.
func (b *bench) sampleSecrets(ctx context.Context, ns string) func() secretSample {
	stop := make(chan struct{})
	done := make(chan secretSample, 1)
	go func() {
		var total secretSample
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- total
				return
			case <-ctx.Done():
				done <- total
				return
			case now := <-tick.C:
				s := b.obs.sampleSecrets(ns, now)
				total.holding += s.holding
				total.expired += s.expired
				total.empty += s.empty
			}
		}
	}()
	return func() secretSample {
		close(stop)
		return <-done
	}
}

// perTokenRequest describes the API requests of a scenario per TokenRequest
// (or per login: n says per what).
func perTokenRequest(d requestCounts, n int) string {
	per := func(x int) string { return fmt.Sprintf("%.2f", float64(x)/float64(n)) }
	return fmt.Sprintf("GET secrets %s, POST secrets %s, PUT secrets %s, PUT tokenrequests/status %s (409 conflicts %s), GET tokenrequests %s, events written %s",
		per(d.count("GET", "secrets", "", "")), per(d.count("POST", "secrets", "", "")), per(d.count("PUT", "secrets", "", "")),
		per(d.count("PUT", "tokenrequests", "status", "")), per(d.count("PUT", "tokenrequests", "status", "409")),
		per(d.count("GET", "tokenrequests", "", "")), per(d.writes("events")))
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	// Nearest rank.
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}
