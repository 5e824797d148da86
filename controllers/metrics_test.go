package controllers

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// seriesFor counts the tokensync series labelled with a TokenRequest.
func seriesFor(t *testing.T, namespace, name string) int {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "tokensync_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var ns, nm string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "namespace":
					ns = l.GetValue()
				case "name":
					nm = l.GetValue()
				}
			}
			if ns == namespace && nm == name {
				n++
			}
		}
	}
	return n
}

// seriesValue is the value and labels of metric's series for a TokenRequest
// (-1 when there is none).
func seriesValue(t *testing.T, metric, namespace, name string) (float64, map[string]string) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == namespace && labels["name"] == name {
				return m.GetGauge().GetValue(), labels
			}
		}
	}
	return -1, nil
}

// failureSeries collects h's series as "provider host" -> count.
func failureSeries(t *testing.T, h *hostFailures) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	h.Collect(ch)
	close(ch)
	out := map[string]float64{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{}
		for _, l := range pb.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		out[labels["provider"]+" "+labels["endpoint_host"]] = pb.GetCounter().GetValue()
	}
	return out
}

// TestLoginFailuresByHostAreBounded: hosts are normalised as the login rate
// limit counts them; 10,000 hosts of a tenant make at most 64 series and
// "other"; a host idle for an hour gives its place to a new one, a busy one
// keeps it.
func TestLoginFailuresByHostAreBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := newHostFailures(func() time.Time { return now })

	h.inc("partner", "https://API.Example.com/v1")
	h.inc("partner", "https://api.example.com/v2/login")
	if got := failureSeries(t, h); len(got) != 1 || got["partner api.example.com"] != 2 {
		t.Fatalf("series %v, want partner api.example.com = 2", got)
	}

	for i := range 10_000 {
		now = now.Add(time.Millisecond)
		h.inc("http", fmt.Sprintf("https://h%d.tenant.example", i))
	}
	got := failureSeries(t, h)
	if len(got) != maxFailureHosts+1 {
		t.Fatalf("%d series after 10,000 hosts, want %d hosts and other", len(got), maxFailureHosts)
	}
	if got["partner api.example.com"] != 2 {
		t.Errorf("the first host's series was lost: %v", got["partner api.example.com"])
	}
	if n := got["http other"]; n != 10_000-(maxFailureHosts-1) {
		t.Errorf("other = %v, want %d", n, 10_000-(maxFailureHosts-1))
	}

	// An hour later the idle hosts give way: the oldest first.
	now = now.Add(failureHostIdle)
	h.inc("http", "https://h9999.tenant.example") // counted as other before: a new place now
	h.inc("aml", "https://api.amlwatcher.com")
	got = failureSeries(t, h)
	if len(got) != maxFailureHosts+1 {
		t.Fatalf("%d series, want %d hosts and other", len(got), maxFailureHosts)
	}
	if _, ok := got["partner api.example.com"]; ok {
		t.Error("the host idle longest kept its place")
	}
	if got["aml api.amlwatcher.com"] != 1 || got["http h9999.tenant.example"] != 1 {
		t.Errorf("new hosts not counted on their own: %v", got)
	}
}

// collectStatus collects m's series as "metric namespace/name" -> value.
func collectStatus(t *testing.T, m *statusMetrics) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	m.Collect(ch)
	close(ch)
	out := map[string]float64{}
	for metric := range ch {
		var pb dto.Metric
		if err := metric.Write(&pb); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{}
		for _, l := range pb.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		name := metric.Desc().String()
		name = name[strings.Index(name, `fqName: "`)+len(`fqName: "`):]
		name = name[:strings.Index(name, `"`)]
		out[name+" "+labels["namespace"]+"/"+labels["name"]] = pb.GetGauge().GetValue()
	}
	return out
}

// TestStatusGaugesForTheAlerts: the gauges the alerts read, from the
// cached TokenRequests and ClusterTokenRequests: the planned refresh of the
// token held is the reconciler's own (observation.refreshAt: the Secret's
// times, spec.refreshBefore, the jitter seeded by the UID and the expiry),
// not the next retry (status.nextRefreshTime after a failure); the window is
// refreshWindow's; neither exists without a token; suspended follows
// spec.suspend; a ClusterTokenRequest's failed namespaces are
// status.namespaces.failed, and a TokenRequest has no such series.
func TestStatusGaugesForTheAlerts(t *testing.T) {
	obtained := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	expires := obtained.Add(time.Hour)
	retry := obtained.Add(55*time.Minute + 5*time.Second) // after a failed refresh
	thirtyMinutes := 30 * time.Minute
	status := tokensyncv1alpha1.TokenStatus{
		ExpiresAt: &metav1.Time{Time: expires}, LastRefreshTime: &metav1.Time{Time: obtained}, NextRefreshTime: &metav1.Time{Time: retry},
	}
	tokenRequest := func(name string, refreshBefore *time.Duration, suspend bool, st tokensyncv1alpha1.TokenStatus) *tokensyncv1alpha1.TokenRequest {
		tr := &tokensyncv1alpha1.TokenRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, UID: "uid-" + types.UID(name)}}
		tr.Spec.Provider, tr.Spec.Suspend = "partner", suspend
		if refreshBefore != nil {
			tr.Spec.RefreshBefore = &metav1.Duration{Duration: *refreshBefore}
		}
		tr.Status.TokenStatus = st
		return tr
	}
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{ObjectMeta: metav1.ObjectMeta{Name: "shared", UID: "uid-shared"}}
	ctr.Spec.Provider = "partner"
	ctr.Status.TokenStatus = status
	ctr.Status.Namespaces = tokensyncv1alpha1.NamespaceCounts{Selected: 3, Written: 2, Failed: 1}
	c := fake.NewClientBuilder().WithScheme(testScheme).WithObjects(
		tokenRequest("default-window", nil, false, status),
		tokenRequest("explicit-window", &thirtyMinutes, true, status),
		tokenRequest("no-token", nil, false, tokensyncv1alpha1.TokenStatus{}),
		ctr,
	).Build()
	m := &statusMetrics{readers: map[*TokenRequestReconciler]statusReader{{}: {Reader: c, cluster: true}}}
	got := collectStatus(t, m)

	// What the reconciler plans, from the same token.
	planned := func(uid string, refreshBefore *time.Duration) float64 {
		o := policy.Observation{UID: uid, RefreshBefore: refreshBefore, Target: policy.TargetState{Holds: true, Held: policy.HeldToken{ObtainedAt: obtained, ExpiresAt: expires}}}
		return float64(policy.PlannedRefresh(o.UID, o.Target.Held.ObtainedAt, o.Target.Held.ExpiresAt, o.RefreshBefore).Unix())
	}
	want := map[string]float64{
		"tokensync_token_planned_refresh_timestamp_seconds team-a/default-window":  planned("uid-default-window", nil),
		"tokensync_token_planned_refresh_timestamp_seconds team-a/explicit-window": planned("uid-explicit-window", &thirtyMinutes),
		"tokensync_token_planned_refresh_timestamp_seconds /shared":                planned("uid-shared", nil),
		"tokensync_token_refresh_window_seconds team-a/default-window":             300,
		"tokensync_token_refresh_window_seconds team-a/explicit-window":            1800,
		"tokensync_token_refresh_window_seconds /shared":                           300,
		"tokensync_tokenrequest_suspended team-a/default-window":                   0,
		"tokensync_tokenrequest_suspended team-a/explicit-window":                  1,
		"tokensync_tokenrequest_suspended team-a/no-token":                         0,
		"tokensync_tokenrequest_suspended /shared":                                 0,
		"tokensync_clustertokenrequest_failed_namespaces /shared":                  1,
	}
	for key, v := range want {
		if g, ok := got[key]; !ok || g != v {
			t.Errorf("%s = %v (present: %v), want %v", key, g, ok, v)
		}
	}
	for key, v := range got {
		for _, metric := range []string{"tokensync_token_planned_refresh_timestamp_seconds", "tokensync_token_refresh_window_seconds", "tokensync_tokenrequest_suspended", "tokensync_clustertokenrequest_failed_namespaces"} {
			if strings.HasPrefix(key, metric+" ") {
				if _, ok := want[key]; !ok {
					t.Errorf("unexpected series %s = %v", key, v)
				}
			}
		}
	}
	// The planned refresh is not the retry, and lies in the window's
	// spread: between 0.75 and 1.25 windows before expiry by default,
	// between 1 and 1.5 with spec.refreshBefore.
	for name, bounds := range map[string][2]time.Duration{"default-window": {225 * time.Second, 375 * time.Second}, "explicit-window": {30 * time.Minute, 45 * time.Minute}} {
		at := time.Unix(int64(got["tokensync_token_planned_refresh_timestamp_seconds team-a/"+name]), 0)
		if at.Equal(retry) || expires.Sub(at) < bounds[0] || expires.Sub(at) > bounds[1] {
			t.Errorf("%s: planned refresh %s, want %s to %s before the expiry %s, not the retry", name, at, bounds[0], bounds[1], expires)
		}
	}
}

// hostUpSeries collects m's series as endpoint host -> value.
func hostUpSeries(t *testing.T, m *hostUpMetrics) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	m.Collect(ch)
	close(ch)
	out := map[string]float64{}
	for s := range ch {
		var pb dto.Metric
		if err := s.Write(&pb); err != nil {
			t.Fatal(err)
		}
		out[pb.GetLabel()[0].GetValue()] = pb.GetGauge().GetValue()
	}
	return out
}

// TestProviderHostUp: tokensync_provider_host_up is 0 for a down host and
// 1 for the others, for the hosts the failure counter names (not "other",
// not a host that never failed), only from a started gate (the leader's).
func TestProviderHostUp(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	failures := newHostFailures(func() time.Time { return now })
	m := &hostUpMetrics{gates: map[*loginGate]bool{}, failures: failures}
	h := newGateHarness(LoginLimits{PerEndpointRate: -1})

	h.downHost(t, "https://down.example")
	failures.inc("partner", "https://down.example")
	failures.inc("aml", "https://down.example") // a second place, the same host
	failures.inc("partner", "https://failed-once.example")
	for i := range maxFailureHosts {
		failures.inc("http", fmt.Sprintf("https://h%d.tenant.example", i)) // the last goes to "other"
	}
	if got := hostUpSeries(t, m); len(got) != 0 {
		t.Fatalf("series %v from a replica whose gate never started (not the leader)", got)
	}
	m.add(h.g)
	got := hostUpSeries(t, m)
	if len(got) != maxFailureHosts-1 || got["down.example"] != 0 || got["failed-once.example"] != 1 {
		t.Errorf("%d series (down.example %v, failed-once.example %v), want one per host of the %d places: down 0, the others 1",
			len(got), got["down.example"], got["failed-once.example"], maxFailureHosts)
	}
	if _, ok := got[otherHost]; ok {
		t.Error(`a series for "other"`)
	}
	if _, ok := got["never-failed.example"]; ok {
		t.Error("a series for a host that never failed")
	}
	m.remove(h.g)
	if got := hostUpSeries(t, m); len(got) != 0 {
		t.Errorf("series %v after the gate stopped (leadership lost)", got)
	}
}

// readySeries collects m's tokensync_tokenrequest_ready series as
// "namespace/name" -> their endpoint_host labels (one each, unless a
// TokenRequest has several series).
func readySeries(t *testing.T, m *statusMetrics) map[string][]string {
	t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	m.Collect(ch)
	close(ch)
	out := map[string][]string{}
	for metric := range ch {
		if metric.Desc() != tokenRequestReadyDesc {
			continue
		}
		var pb dto.Metric
		if err := metric.Write(&pb); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{}
		for _, l := range pb.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		key := labels["namespace"] + "/" + labels["name"]
		out[key] = append(out[key], labels["endpoint_host"])
	}
	return out
}

// TestReadyNamesTheEndpointHost: tokensync_tokenrequest_ready carries the
// endpoint host a TokenRequest (or ClusterTokenRequest) logs in to, as
// tokensync_provider_host_up names that host (spec.endpoint, or the
// provider's default endpoint; empty for a provider the manager does not
// know), so that TokenSyncTokenRequestNotReady can be held back while it
// is down. One series per TokenRequest: a changed endpoint replaces it,
// and a deleted TokenRequest has none.
func TestReadyNamesTheEndpointHost(t *testing.T) {
	ctx := context.Background()
	readyCondition := []metav1.Condition{{Type: tokensyncv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: tokensyncv1alpha1.ReasonProviderUnavailable}}
	tokenRequest := func(name, provider, endpoint string) *tokensyncv1alpha1.TokenRequest {
		tr := &tokensyncv1alpha1.TokenRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name}}
		tr.Spec.Provider, tr.Spec.Endpoint = tokensyncv1alpha1.Provider(provider), endpoint
		tr.Status.Conditions = readyCondition
		return tr
	}
	ctr := &tokensyncv1alpha1.ClusterTokenRequest{ObjectMeta: metav1.ObjectMeta{Name: "shared"}}
	ctr.Spec.Provider, ctr.Spec.Endpoint = "partner", "https://IdP.Internal.example:8443/login"
	ctr.Status.Conditions = readyCondition
	explicit := tokenRequest("explicit", "partner", "https://API.Example.com:443/v1")
	c := fake.NewClientBuilder().WithScheme(testScheme).WithObjects(
		explicit,
		tokenRequest("by-default", "aml", ""),
		tokenRequest("unknown-provider", "nope", ""),
		ctr,
	).Build()
	registry := providers.Registry{
		"partner": {Registration: providers.Registration{Name: "partner"}},
		"aml":     {Registration: providers.Registration{Name: "aml", DefaultEndpoint: "https://AML.example./api"}},
	}
	m := &statusMetrics{readers: map[*TokenRequestReconciler]statusReader{}}
	m.add(&TokenRequestReconciler{Providers: registry}, c, true)

	want := map[string][]string{
		"team-a/explicit":         {"api.example.com"},
		"team-a/by-default":       {"aml.example"},
		"team-a/unknown-provider": {""},
		"/shared":                 {"idp.internal.example:8443"},
	}
	if got := readySeries(t, m); !reflect.DeepEqual(got, want) {
		t.Fatalf("ready series' endpoint_host %v, want %v", got, want)
	}

	// The names are the host-up gauge's: a down host's series there has
	// the label value of the ready series of its TokenRequests.
	failures := newHostFailures(time.Now)
	up := &hostUpMetrics{gates: map[*loginGate]bool{}, failures: failures}
	h := newGateHarness(LoginLimits{PerEndpointRate: -1})
	up.add(h.g)
	for _, endpoint := range []string{explicit.Spec.Endpoint, ctr.Spec.Endpoint, registry["aml"].DefaultEndpoint} {
		h.downHost(t, endpoint)
		failures.inc("partner", endpoint)
	}
	hostUp := hostUpSeries(t, up)
	for key, hosts := range want {
		if hosts[0] == "" {
			continue
		}
		if v, ok := hostUp[hosts[0]]; !ok || v != 0 {
			t.Errorf("%s: tokensync_provider_host_up{endpoint_host=%q} = %v (present: %v), want 0: host_up %v", key, hosts[0], v, ok, hostUp)
		}
	}

	// A changed endpoint: one series, the new host's.
	explicit.Spec.Endpoint = "https://other.example:9443"
	if err := c.Update(ctx, explicit); err != nil {
		t.Fatal(err)
	}
	if got := readySeries(t, m)["team-a/explicit"]; !reflect.DeepEqual(got, []string{"other.example:9443"}) {
		t.Errorf("after the endpoint changed: endpoint_host %v, want [other.example:9443]", got)
	}

	// Deleted: no series of it at all.
	if err := c.Delete(ctx, explicit); err != nil {
		t.Fatal(err)
	}
	for key := range collectStatus(t, m) {
		if strings.HasSuffix(key, " team-a/explicit") {
			t.Errorf("series %s after the TokenRequest was deleted", key)
		}
	}
	if got := readySeries(t, m); len(got) != 3 {
		t.Errorf("ready series %v after a deletion, want the 3 others", got)
	}
}
