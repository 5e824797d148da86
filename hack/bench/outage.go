package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers/providertest"
)

// outageResult is scenario 10: a provider host down under N TokenRequests.
type outageResult struct {
	N                int
	Lifetime, Outage time.Duration
	// AttemptsInOutage are the logins that reached the host while the
	// provider answered 503 to every one.
	AttemptsInOutage int
	// Recovery is from the provider's recovery until every Secret held a
	// valid token (as the observer saw them), RecoveryLimit N / rate + 5 s.
	Recovery, RecoveryLimit time.Duration
	// Logins are the fake's for the batch from the outage's start until
	// every Secret held a new token, Tokens the tokens the Secrets held in
	// that time (one each).
	Logins, Tokens, Clobbered int
}

// outageAttemptLimit is scenario 10's target for a one-minute outage:
// the host's probes every 5 s through its first minute down, and the
// logins that found it down.
const outageAttemptLimit = 15

// outageScenario is scenario 10: N TokenRequests on one endpoint host; just
// before their tokens come due the provider answers 503 to every login for
// hostOutage, then is healthy again.
func (b *bench) outageScenario(ctx context.Context) error {
	ob := batch{ns: "bench-outage", provider: providertest.AmpliFi, prefix: "outage", n: b.sc.outageN}
	var err error
	if ob.endpoints, err = b.endpoints.hosts(1); err != nil {
		return err
	}
	host := strings.TrimPrefix(ob.endpoints[0], "http://")
	b.fake.SetLifetime(ob.provider, b.sc.outageLifetime)
	b.obs.trackSecretsIn(ob.ns)
	if err := b.newBatch(ctx, ob); err != nil {
		return err
	}
	if err := b.createTokenRequests(ctx, ob, 16); err != nil {
		return err
	}
	if _, err := b.obs.waitFirstReady(ctx, ob, b.sc.timeout); err != nil {
		return err
	}
	list := &tokensyncv1alpha1.TokenRequestList{}
	if err := b.cl.client.List(ctx, list, client.InNamespace(ob.ns)); err != nil {
		return err
	}
	var firstDue time.Time
	for _, tr := range list.Items {
		if t := tr.Status.NextRefreshTime; t != nil && (firstDue.IsZero() || t.Time.Before(firstDue)) {
			firstDue = t.Time
		}
	}
	b.logf("outage: %d TokenRequests Ready on %s; first refresh due in %s", ob.n, host, secs(time.Until(firstDue)))
	lead := 3 * time.Second
	if b.sc.hostOutage < 20*time.Second {
		lead = time.Second
	}
	if err := sleep(ctx, time.Until(firstDue.Add(-lead))); err != nil {
		return err
	}
	loginsBefore := sum(loginsPerIdentity(b.fake, ob))
	start := time.Now()
	// Tokens issued from now on live an hour, so that each TokenRequest's
	// one refresh is all that is counted after the outage.
	b.fake.SetLifetime(ob.provider, time.Hour)
	b.fake.FailEvery(ob.provider, 1, providertest.Failure{Status: 503})
	b.logf("outage: provider answering 503 to every login for %s", b.sc.hostOutage)
	if err := sleep(ctx, b.sc.hostOutage); err != nil {
		return err
	}
	b.fake.FailEvery(ob.provider, 0, providertest.Failure{})
	healed := time.Now()
	r := &b.rep.Outage
	r.N, r.Lifetime, r.Outage = ob.n, b.sc.outageLifetime, b.sc.hostOutage
	r.AttemptsInOutage = b.endpoints.requestsTo(host, start, healed)
	r.RecoveryLimit = time.Duration(float64(ob.n)/b.settings.loginRate*float64(time.Second)) + 5*time.Second

	// Every Secret holding a token it was given after the heal, valid.
	var tokens [][]tokenSeen
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, b.sc.timeout, true, func(context.Context) (bool, error) {
		var clobbered int
		tokens, clobbered = b.obs.histories(ob)
		r.Clobbered = clobbered
		now := time.Now()
		for _, h := range tokens {
			if len(h) == 0 {
				return false, nil
			}
			if last := h[len(h)-1]; last.at.Before(healed) || !now.Before(last.expiry) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("outage: not every Secret held a new token after the provider recovered: %w", err)
	}
	r.Recovery, r.Tokens = 0, 0
	for _, h := range tokens {
		for _, t := range h {
			if !t.at.Before(start) {
				r.Tokens++
			}
		}
		r.Recovery = max(r.Recovery, h[len(h)-1].at.Sub(healed))
	}
	r.Logins = sum(loginsPerIdentity(b.fake, ob)) - loginsBefore
	b.logf("outage: %d attempts during the %s outage; every Secret held a new token %s after the provider recovered (limit %s); %d logins, %d tokens stored",
		r.AttemptsInOutage, secs(r.Outage), secs(r.Recovery), secs(r.RecoveryLimit), r.Logins, r.Tokens)
	return nil
}

func sum(ns []int) int {
	total := 0
	for _, n := range ns {
		total += n
	}
	return total
}
