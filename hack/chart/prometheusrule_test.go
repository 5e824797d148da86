package chart

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
)

// The tests below evaluate the alerts of config/prometheus/prometheusrule.yaml
// with Prometheus's own rule evaluation (rules.AlertingRule: pending, then
// firing after `for`) over synthetic series loaded with promqltest, as the
// manager exports them: one TokenRequest (or ClusterTokenRequest) app in
// team-a, its token's expiry, planned refresh and refresh window, Ready
// (with the endpoint host it logs in to), Stalled, suspended and failed
// namespaces; or several, and their provider hosts' up gauge. Time starts
// at 0 (the Unix epoch), in seconds.

// token is a token held from at (when it was obtained) for lifetime
// seconds, with the default refresh window (min(5m, lifetime/3)) and the
// jitter's mean: planned at one window before expiry.
type token struct{ at, lifetime float64 }

func (k token) expiry() float64  { return k.at + k.lifetime }
func (k token) window() float64  { return math.Min(300, k.lifetime/3) }
func (k token) planned() float64 { return k.expiry() - k.window() }

// scenario is what the manager exports over time of one TokenRequest.
type scenario struct {
	// namespace and name of the TokenRequest: team-a and app when empty.
	namespace, name string
	// host is the endpoint host it logs in to (the Ready series'
	// endpoint_host): partner.example when empty.
	host string
	// tokens held, in order: each from its at until the next's.
	tokens []token
	// ready, stalled, suspended and failed (a ClusterTokenRequest's failed
	// namespaces; nil for a TokenRequest) at t; nil ready: the condition
	// does not exist.
	ready, stalled, suspended, failed func(t float64) float64
}

// refreshedOnTime is first and the tokens after it, each obtained at the
// planned refresh of the one before, until end.
func refreshedOnTime(first token, end time.Duration) []token {
	tokens := []token{first}
	for last := first; last.expiry() <= end.Seconds(); last = tokens[len(tokens)-1] {
		tokens = append(tokens, token{at: last.planned(), lifetime: last.lifetime})
	}
	return tokens
}

func always(v float64) func(float64) float64 { return func(float64) float64 { return v } }

// step is before until t0, then after.
func step(t0, before, after float64) func(float64) float64 {
	return func(t float64) float64 {
		if t < t0 {
			return before
		}
		return after
	}
}

// held is the token held at t.
func (s scenario) held(t float64) (token, bool) {
	var h token
	ok := false
	for _, k := range s.tokens {
		if k.at <= t {
			h, ok = k, true
		}
	}
	return h, ok
}

func (s scenario) key() (namespace, name string) {
	namespace, name = s.namespace, s.name
	if namespace == "" {
		namespace = "team-a"
	}
	if name == "" {
		name = "app"
	}
	return namespace, name
}

// fleet is what the manager exports over time of several TokenRequests,
// and tokensync_provider_host_up by endpoint host (nil: no such series),
// which has no namespace of its own: the scrape gives it the manager's.
type fleet struct {
	requests []scenario
	hostUp   map[string]func(t float64) float64
}

// writeSeries writes the promqltest series line of metric{labels}, scraped
// every interval until end.
func writeSeries(b *strings.Builder, metric, labels string, interval, end time.Duration, value func(t float64) (float64, bool)) {
	fmt.Fprintf(b, "  %s{%s}", metric, labels)
	for t := time.Duration(0); t <= end; t += interval {
		if v, ok := value(t.Seconds()); ok {
			b.WriteString(" " + strconv.FormatFloat(v, 'f', -1, 64))
		} else {
			b.WriteString(" _")
		}
	}
	b.WriteString("\n")
}

// load is the promqltest load command of the fleet's series, scraped every
// interval until end.
func (f fleet) load(interval, end time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "load %s\n", model.Duration(interval))
	for _, s := range f.requests {
		s.writeSeries(&b, interval, end)
	}
	for host, up := range f.hostUp {
		writeSeries(&b, "tokensync_provider_host_up", fmt.Sprintf("namespace=%q, endpoint_host=%q", "tokensync-system", host), interval, end,
			func(t float64) (float64, bool) { return up(t), true })
	}
	return b.String()
}

// writeSeries writes the scenario's series.
func (s scenario) writeSeries(b *strings.Builder, interval, end time.Duration) {
	namespace, name := s.key()
	host := s.host
	if host == "" {
		host = "partner.example"
	}
	labels := fmt.Sprintf("namespace=%q, name=%q, provider=%q", namespace, name, "partner")
	series := func(metric string, value func(t float64) (float64, bool)) {
		l := labels
		if metric == "tokensync_tokenrequest_ready" {
			l += fmt.Sprintf(", endpoint_host=%q", host)
		}
		writeSeries(b, metric, l, interval, end, value)
	}
	fromToken := func(f func(token) float64) func(float64) (float64, bool) {
		return func(t float64) (float64, bool) {
			k, ok := s.held(t)
			return f(k), ok
		}
	}
	gauge := func(f func(float64) float64) func(float64) (float64, bool) {
		return func(t float64) (float64, bool) { return f(t), true }
	}
	series("tokensync_token_expiry_timestamp_seconds", fromToken(token.expiry))
	series("tokensync_token_planned_refresh_timestamp_seconds", fromToken(token.planned))
	series("tokensync_token_refresh_window_seconds", fromToken(token.window))
	for metric, f := range map[string]func(float64) float64{
		"tokensync_tokenrequest_ready":                    s.ready,
		"tokensync_tokenrequest_stalled":                  s.stalled,
		"tokensync_tokenrequest_suspended":                s.suspended,
		"tokensync_clustertokenrequest_failed_namespaces": s.failed,
	} {
		if metric == "tokensync_tokenrequest_stalled" || metric == "tokensync_tokenrequest_suspended" {
			if f == nil {
				f = always(0) // exported for every TokenRequest
			}
		}
		if f != nil {
			series(metric, gauge(f))
		}
	}
}

// firing evaluates the alert over the scenario every interval (the scrape
// and the rule evaluation alike) from 0 to end, and returns the times at
// which it fired for team-a/app.
func firing(t *testing.T, alert string, s scenario, interval, end time.Duration) []float64 {
	t.Helper()
	var fired []float64
	for key, at := range evaluate(t, alert, fleet{requests: []scenario{s}}, interval, end) {
		if strings.HasPrefix(key, `{namespace="team-a", name="app"`) {
			fired = append(fired, at...)
		}
	}
	sort.Float64s(fired)
	return fired
}

// evaluate evaluates the alert over the fleet every interval from 0 to
// end, and returns the times at which it fired, by the alert's labels
// other than alertname and its rule's (as a PromQL label set).
func evaluate(t *testing.T, alert string, f fleet, interval, end time.Duration) map[string][]float64 {
	t.Helper()
	var rule *alertRule
	for _, r := range alertRules(t) {
		if r.Alert == alert {
			rule = &r
		}
	}
	if rule == nil {
		t.Fatalf("no alert %s in config/prometheus/prometheusrule.yaml", alert)
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(rule.Expr)
	if err != nil {
		t.Fatalf("%s: %v", alert, err)
	}
	hold, err := model.ParseDuration(rule.For)
	if err != nil {
		t.Fatalf("%s: for %q: %v", alert, rule.For, err)
	}
	storage := promqltest.LoadedStorage(t, f.load(interval, end))
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, promqltest.DefaultMaxSamplesPerQuery)
	query := rules.EngineQueryFunc(engine, storage)
	r := rules.NewAlertingRule(alert, expr, time.Duration(hold), 0, labels.FromMap(rule.Labels), labels.FromMap(rule.Annotations),
		labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler))
	fired := map[string][]float64{}
	for at := time.Duration(0); at <= end; at += interval {
		ts := time.Unix(0, 0).Add(at)
		if _, err := r.Eval(context.Background(), 0, ts, query, nil, 0); err != nil {
			t.Fatalf("%s at %s: %v", alert, at, err)
		}
		for _, a := range r.ActiveAlerts() {
			if a.State != rules.StateFiring {
				continue
			}
			b := labels.NewBuilder(a.Labels).Del(labels.AlertName)
			for name := range rule.Labels {
				b.Del(name)
			}
			key := alertKey(b.Labels())
			fired[key] = append(fired[key], at.Seconds())
		}
	}
	return fired
}

// alertKey is an alert's labels as in the tests' keys: namespace and name
// first (each only when present), then the others in order, e.g.
// {namespace="team-a", name="app", provider="partner"}.
func alertKey(ls labels.Labels) string {
	var parts []string
	for _, name := range []string{"namespace", "name"} {
		if v := ls.Get(name); v != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", name, v))
		}
	}
	ls.Range(func(l labels.Label) {
		if l.Name != "namespace" && l.Name != "name" {
			parts = append(parts, fmt.Sprintf("%s=%q", l.Name, l.Value))
		}
	})
	return "{" + strings.Join(parts, ", ") + "}"
}

// TestTokenSyncTokenExpiringSoon: fires for a token whose refresh did not
// happen, before it expires, and only once its remaining life is under a
// third of its refresh window; never for a token refreshed on time (or late
// but above that third), a suspended TokenRequest's, or a ClusterTokenRequest
// whose token is fresh though a namespace fails. With a 30 s scrape and
// evaluation, a token that lives 10 minutes (a window of 200 s) is covered
// whatever the phase of the evaluations; a 60 s token is covered with a 1 s
// one.
func TestTokenSyncTokenExpiringSoon(t *testing.T) {
	const alert = "TokenSyncTokenExpiringSoon"
	hour := token{at: 0, lifetime: 3600}
	cases := []struct {
		name     string
		s        scenario
		interval time.Duration
		end      time.Duration
		// fires: the first firing lies in (expiry - window/3, expiry) of
		// the last token; otherwise it never fires.
		fires bool
	}{
		{"a 1-hour token refreshed on time", scenario{tokens: refreshedOnTime(hour, 3*time.Hour), ready: always(1)}, 30 * time.Second, 3 * time.Hour, false},
		{"a 1-hour token refreshed late, above a third of its window", scenario{
			tokens: []token{hour, {at: hour.expiry() - 120, lifetime: 3600}}, ready: always(1),
		}, 30 * time.Second, 90 * time.Minute, false},
		{"a 1-hour token not refreshed", scenario{tokens: []token{hour}, ready: step(hour.planned(), 1, 0)}, 30 * time.Second, 2 * time.Hour, true},
		{"a 60 s token refreshed on time", scenario{tokens: refreshedOnTime(token{at: 0, lifetime: 60}, 5*time.Minute), ready: always(1)}, time.Second, 5 * time.Minute, false},
		{"a 60 s token not refreshed", scenario{tokens: []token{{at: 0, lifetime: 60}}, ready: step(40, 1, 0)}, time.Second, 3 * time.Minute, true},
		{"a suspended TokenRequest's expired token", scenario{
			tokens: []token{hour}, ready: always(0), suspended: always(1),
		}, 30 * time.Second, 2 * time.Hour, false},
		{"a ClusterTokenRequest with 1 failed namespace and a fresh token", scenario{
			tokens: refreshedOnTime(hour, 3*time.Hour), ready: always(0), failed: always(1),
		}, 30 * time.Second, 3 * time.Hour, false},
	}
	// The shortest lifetime stated: 10 minutes, for every phase of a 30 s
	// evaluation against the token's times.
	for phase := 0.0; phase < 30; phase += 7 {
		k := token{at: phase, lifetime: 600}
		cases = append(cases, struct {
			name     string
			s        scenario
			interval time.Duration
			end      time.Duration
			fires    bool
		}{fmt.Sprintf("a 10-minute token not refreshed, obtained at %gs", phase), scenario{tokens: []token{k}, ready: step(k.planned(), 1, 0)}, 30 * time.Second, 20 * time.Minute, true})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fired := firing(t, alert, c.s, c.interval, c.end)
			if !c.fires {
				if len(fired) != 0 {
					t.Errorf("fired at %v s", fired)
				}
				return
			}
			last := c.s.tokens[len(c.s.tokens)-1]
			if len(fired) == 0 {
				t.Fatalf("never fired (expiry at %g s)", last.expiry())
			}
			if first := fired[0]; first >= last.expiry() || first <= last.expiry()-last.window()/3 {
				t.Errorf("first fired at %g s, want before the expiry at %g s and after a third of the window before it (%g s)",
					first, last.expiry(), last.expiry()-last.window()/3)
			}
		})
	}
}

// TestTokenSyncTokenRequestNotReady: Ready False for 15 minutes fires,
// also for a TokenRequest that never got a token; not a suspended or a
// Stalled one, nor a ClusterTokenRequest whose token is fresh and whose
// Ready is False for a failed namespace; Ready back to True before 15
// minutes does not fire.
func TestTokenSyncTokenRequestNotReady(t *testing.T) {
	const alert = "TokenSyncTokenRequestNotReady"
	hour := token{at: 0, lifetime: 3600}
	cases := []struct {
		name string
		s    scenario
		// fireAfter: Ready False since, for 15 minutes; negative: never fires.
		fireAfter float64
	}{
		{"never got a token", scenario{ready: always(0)}, 0},
		{"its refreshes fail", scenario{tokens: []token{hour}, ready: step(hour.planned(), 1, 0)}, hour.planned()},
		{"not Ready for 10 minutes", scenario{tokens: []token{hour}, ready: func(t float64) float64 {
			if t >= 600 && t < 1200 {
				return 0
			}
			return 1
		}}, -1},
		{"suspended", scenario{tokens: []token{hour}, ready: always(0), suspended: always(1)}, -1},
		{"Stalled", scenario{ready: always(0), stalled: always(1)}, -1},
		{"a ClusterTokenRequest with a failed namespace and a fresh token", scenario{
			tokens: refreshedOnTime(hour, 2*time.Hour), ready: always(0), failed: always(1),
		}, -1},
		{"a ClusterTokenRequest with a failed namespace whose refresh fails", scenario{
			tokens: []token{hour}, ready: always(0), failed: always(1),
		}, hour.planned()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkFiresAfter(t, firing(t, alert, c.s, 30*time.Second, 2*time.Hour), c.fireAfter, 15*60)
		})
	}
}

// TestTokenSyncNamespaceWriteFailing: a ClusterTokenRequest with a failed
// namespace and a fresh token fires after 15 minutes; not a suspended or
// Stalled one, nor one whose namespaces are all written, nor a TokenRequest.
func TestTokenSyncNamespaceWriteFailing(t *testing.T) {
	const alert = "TokenSyncNamespaceWriteFailing"
	fresh := refreshedOnTime(token{at: 0, lifetime: 3600}, 90*time.Minute)
	cases := []struct {
		name      string
		s         scenario
		fireAfter float64
	}{
		{"1 failed namespace and a fresh token", scenario{tokens: fresh, ready: step(600, 1, 0), failed: step(600, 0, 1)}, 600},
		{"a namespace failing for 10 minutes", scenario{tokens: fresh, ready: always(1), failed: func(t float64) float64 {
			if t >= 600 && t < 1200 {
				return 1
			}
			return 0
		}}, -1},
		{"no failed namespace", scenario{tokens: fresh, ready: always(1), failed: always(0)}, -1},
		{"suspended", scenario{tokens: fresh, ready: always(0), failed: always(1), suspended: always(1)}, -1},
		{"Stalled", scenario{tokens: fresh, ready: always(0), failed: always(1), stalled: always(1)}, -1},
		{"a TokenRequest", scenario{tokens: fresh, ready: always(0)}, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkFiresAfter(t, firing(t, alert, c.s, 30*time.Second, 90*time.Minute), c.fireAfter, 15*60)
		})
	}
	// And the fresh token pages nothing else.
	s := cases[0].s
	for _, other := range []string{"TokenSyncTokenExpiringSoon", "TokenSyncTokenRequestNotReady"} {
		if fired := firing(t, other, s, 30*time.Second, 90*time.Minute); len(fired) != 0 {
			t.Errorf("%s fired at %v s for a ClusterTokenRequest with a failed namespace and a fresh token", other, fired)
		}
	}
}

// checkFiresAfter: with a condition true from since (negative: the alert
// must never fire), the alert fires first after hold seconds, within two
// 30 s evaluations, and keeps firing.
func checkFiresAfter(t *testing.T, fired []float64, since, hold float64) {
	t.Helper()
	if since < 0 {
		if len(fired) != 0 {
			t.Errorf("fired at %v s", fired)
		}
		return
	}
	if len(fired) == 0 {
		t.Fatalf("never fired (the condition holds from %g s)", since)
	}
	if first := fired[0]; first < since+hold || first > since+hold+60 {
		t.Errorf("first fired at %g s, want %g s after %g s (within two evaluations)", first, hold, since)
	}
	gaps := append([]float64(nil), fired...)
	sort.Float64s(gaps)
	for i := 1; i < len(gaps); i++ {
		if gaps[i]-gaps[i-1] > 30 {
			t.Errorf("stopped firing between %g s and %g s", gaps[i-1], gaps[i])
		}
	}
}

// TestTokenSyncProviderHostDown: a provider host down for 30 minutes
// fires TokenSyncProviderHostDown once per host after 5 minutes (two
// TokenRequests on one host: one alert; a second host down: a second
// alert), and TokenSyncTokenRequestNotReady is held back meanwhile for the
// TokenRequests and ClusterTokenRequests on a down host, not for one on a
// host that is up; once its host is up again, a TokenRequest still not
// Ready fires after its own 15 minutes. A host down for 2 minutes (a blip)
// fires nothing.
func TestTokenSyncProviderHostDown(t *testing.T) {
	const (
		outageFrom, outageTo = 600.0, 2400.0
		end                  = 2 * time.Hour
	)
	hour := token{at: 0, lifetime: 3600}
	down := step(outageFrom, 1, 0)
	notReady := step(outageFrom, 1, 0) // from the outage on, and still after it
	f := fleet{
		requests: []scenario{
			{name: "a", host: "down.example", tokens: []token{hour}, ready: notReady},
			{name: "b", host: "down.example", tokens: []token{hour}, ready: notReady},
			// A ClusterTokenRequest: its series' namespace is the manager's.
			{namespace: "tokensync-system", name: "shared", host: "down.example", tokens: []token{hour}, ready: notReady, failed: always(0)},
			{name: "c", host: "idp.internal.example:8443", tokens: []token{hour}, ready: notReady},
			{name: "on-an-up-host", host: "up.example", tokens: []token{hour}, ready: notReady},
		},
		hostUp: map[string]func(float64) float64{
			"down.example": func(t float64) float64 {
				if t >= outageFrom && t < outageTo {
					return 0
				}
				return 1
			},
			"idp.internal.example:8443": down, // down to the end
			"up.example":                always(1),
		},
	}

	hostDown := evaluate(t, "TokenSyncProviderHostDown", f, 30*time.Second, end)
	if len(hostDown) != 2 {
		t.Errorf("TokenSyncProviderHostDown fired as %v, want once for down.example and once for idp.internal.example:8443", keys(hostDown))
	}
	t.Run("down.example", func(t *testing.T) {
		fired := hostDown[`{endpoint_host="down.example"}`]
		checkFiresAfter(t, fired, outageFrom, 5*60)
		if last := slices.Max(append(fired, 0)); last >= outageTo {
			t.Errorf("still fired at %g s, the host up since %g s", last, outageTo)
		}
	})
	t.Run("idp.internal.example:8443", func(t *testing.T) {
		checkFiresAfter(t, hostDown[`{endpoint_host="idp.internal.example:8443"}`], outageFrom, 5*60)
	})

	notReadyFired := evaluate(t, "TokenSyncTokenRequestNotReady", f, 30*time.Second, end)
	for _, c := range []struct {
		key string
		// since: what NotReady's 15 minutes count from; negative: never.
		since float64
	}{
		// Held back through the outage; its own 15 minutes from the host's
		// return.
		{`{namespace="team-a", name="a", provider="partner"}`, outageTo},
		{`{namespace="team-a", name="b", provider="partner"}`, outageTo},
		{`{namespace="tokensync-system", name="shared", provider="partner"}`, outageTo},
		// Its host never comes back: HostDown pages for it.
		{`{namespace="team-a", name="c", provider="partner"}`, -1},
		// As before.
		{`{namespace="team-a", name="on-an-up-host", provider="partner"}`, outageFrom},
	} {
		t.Run("NotReady "+c.key, func(t *testing.T) {
			checkFiresAfter(t, notReadyFired[c.key], c.since, 15*60)
		})
	}
	if len(notReadyFired) != 4 {
		t.Errorf("TokenSyncTokenRequestNotReady fired as %v, want for a, b, shared and on-an-up-host", keys(notReadyFired))
	}

	t.Run("a blip", func(t *testing.T) {
		blip := fleet{
			requests: []scenario{{name: "a", host: "flaky.example", tokens: []token{hour}, ready: func(t float64) float64 {
				if t >= outageFrom && t < outageFrom+150 {
					return 0
				}
				return 1
			}}},
			hostUp: map[string]func(float64) float64{"flaky.example": func(t float64) float64 {
				if t >= outageFrom && t < outageFrom+120 {
					return 0
				}
				return 1
			}},
		}
		for _, alert := range []string{"TokenSyncProviderHostDown", "TokenSyncTokenRequestNotReady"} {
			if fired := evaluate(t, alert, blip, 30*time.Second, time.Hour); len(fired) != 0 {
				t.Errorf("%s fired for a host down for 2 minutes: %v", alert, fired)
			}
		}
	})
}

// keys are m's keys, sorted.
func keys(m map[string][]float64) []string {
	out := slices.Collect(maps.Keys(m))
	sort.Strings(out)
	return out
}
