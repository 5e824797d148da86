package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestTinyBench runs every scenario at the tiny scale, so that the harness
// cannot rot, and checks the figures that are exact whatever the machine:
// logins per TokenRequest, logins and writes after a restart and while
// idle, logins per stored token, API requests per refresh, hanging logins
// at once, the fan-out's logins and Secret writes, and one login per
// TokenRequest after a provider host's outage. It checks no timing: make
// bench does.
func TestTinyBench(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	sc := scales["tiny"]
	rep, err := run(context.Background(), options{scale: sc, root: root, shards: 2, progress: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	rep.writeTable(&table)
	rep.writeDetails(&table)
	t.Logf("tiny bench (timings mean nothing at this scale):\n%s", table.String())

	if l := rep.Logins; l.TokenRequests != sc.latencyN+sc.burstN || l.Min != 1 || l.Max != 1 || l.Attempts != l.Logins {
		t.Errorf("scenarios 1 and 2: %d TokenRequests had %d to %d logins each, %d attempts in all; want %d with exactly 1 login and no failed attempt",
			l.TokenRequests, l.Min, l.Max, l.Attempts, sc.latencyN+sc.burstN)
	}
	if r := rep.Restart; r.TokenRequests != sc.burstN || r.Logins != 0 || r.SecretWrites != 0 || r.TokenRequestWrites != 0 {
		t.Errorf("restart with %d valid tokens (want %d): %d logins, %d Secret writes, %d TokenRequest writes; want none",
			r.TokenRequests, sc.burstN, r.Logins, r.SecretWrites, r.TokenRequestWrites)
	}
	if i := rep.Idle; i.TokenRequests != sc.burstN || i.Logins != 0 || i.Writes != 0 {
		t.Errorf("idle with %d TokenRequests (want %d): %d logins, %d writes; want none", i.TokenRequests, sc.burstN, i.Logins, i.Writes)
	}
	if m := rep.Memory; m.TokenRequests != sc.burstN || m.Unrelated != sc.unrelatedN || m.Before.Live <= 0 || m.Before.InUse <= 0 || m.After.RSS <= 0 {
		t.Errorf("memory: %+v, want readings with %d TokenRequests and %d unrelated Secrets", m, sc.burstN, sc.unrelatedN)
	}
	// Every TokenRequest of scenarios 6, 7 and 8 holds a short-lived token
	// and then at least one more: at least two tokens each, one login each.
	for _, w := range []struct {
		scenario string
		secretWatch
		n int
	}{
		{"refresh", rep.Refresh.secretWatch, sc.refreshN},
		{"flaky", rep.Flaky.secretWatch, sc.flakyN},
		{"noisy neighbour", rep.Noisy.Refresh.secretWatch, sc.refreshN},
	} {
		if w.Tokens < 2*w.n || w.Logins != w.Tokens || w.Clobbered != 0 || w.Empty != 0 {
			t.Errorf("%s: %d logins for %d stored tokens (want equal, at least %d), %d clobbered, %d empty samples; want none",
				w.scenario, w.Logins, w.Tokens, 2*w.n, w.Clobbered, w.Empty)
		}
	}
	if f := rep.Flaky; f.Attempts > f.AttemptBound || f.LoginsSinceOutage != sc.flakyN {
		t.Errorf("flaky: %d login attempts (the backoff allows %d) and %d logins from the outage until all were refreshed; want one login each, %d",
			f.Attempts, f.AttemptBound, f.LoginsSinceOutage, sc.flakyN)
	}
	if p := rep.Refresh.Steady; !p.exact() {
		t.Errorf("refresh: %d refreshes cost %d reads, %d Secret writes, %d status writes, %d other TokenRequest writes, %d events; want one read, Secret write, status write and event each, and no other TokenRequest write (GETs per refresh: %s)",
			p.refreshes, p.reads(), p.writes("secrets"), p.statusWrites(), p.writesTo("tokenrequests", ""), p.writes("events"), p.getsByResource())
	}
	// The hanging namespace's TokenRequests outnumber the operator's bound
	// of logins in flight per namespace, spread over hosts enough that the
	// bound per host does not hold them first; every hanging login stays
	// in flight until the endpoints close, so the bound is reached exactly.
	if n, bound := rep.Noisy.MostInFlight, rep.Settings.namespaceInFlight; n != min(bound, sc.hangN) {
		t.Errorf("noisy neighbour: at most %d logins hung at once, want the bound per namespace, %d", n, min(bound, sc.hangN))
	}
	// One ClusterTokenRequest: one login for every namespace, one more for
	// the refresh, which writes each Secret once (a PUT each, the one
	// holding the token too, nothing created or deleted); the plain
	// client logs in once too.
	if f := rep.FanOut; f.N != sc.fanoutN || !f.oneLoginEach() || f.PlainLogins != 1 {
		t.Errorf("fan-out to %d namespaces (want %d): %d logins for the first write and %d in all after the refresh, %d then %d distinct tokens in the Secrets, %d plain-client logins; want 1, 2, 1, 1 and 1",
			f.N, sc.fanoutN, f.Logins, f.RefreshLogins, f.Tokens, f.RefreshTokens, f.PlainLogins)
	}
	if f := rep.FanOut; !f.refreshWritesOnce() {
		t.Errorf("fan-out refresh: %s; each Secret held %d to %d tokens; want %d PUTs of Secrets, no POST or DELETE, 2 tokens each",
			fanOutRequests(f.Refresh), f.MinTokens, f.MaxTokens, sc.fanoutN+heldSecrets)
	}
	if f := rep.FanOut; f.FirstWrite.count("POST", "secrets", "", "") != sc.fanoutN+heldSecrets {
		t.Errorf("fan-out first write: %s; want %d POSTs of Secrets", fanOutRequests(f.FirstWrite), sc.fanoutN+heldSecrets)
	}
	// A provider host's outage: after it, one login and one token for
	// each TokenRequest, nothing clobbered; during it, the host was tried.
	if o := rep.Outage; o.N != sc.outageN || o.Logins != sc.outageN || o.Tokens != sc.outageN || o.Clobbered != 0 || o.AttemptsInOutage == 0 {
		t.Errorf("outage of %d TokenRequests' host (want %d): %d logins and %d tokens stored after it, %d clobbered, %d attempts during it; want one login and one token each, none clobbered, some attempts",
			o.N, sc.outageN, o.Logins, o.Tokens, o.Clobbered, o.AttemptsInOutage)
	}
	if s := rep.Sharded; s.Logins != sc.burstN {
		t.Errorf("burst over %d managers: %d logins for %d TokenRequests, want one each", s.Shards, s.Logins, sc.burstN)
	}
}

// testLog writes the bench's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
