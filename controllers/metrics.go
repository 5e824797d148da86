package controllers

import (
	"context"
	"sync"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/providers"
)

// Counters and histograms, kept by the reconciler as things happen.
var (
	loginsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokensync_logins_total",
		Help: "Logins attempted, by provider and result (success or the failure reason).",
	}, []string{"provider", "result"})
	rolloutRestartsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokensync_rollout_restarts_total",
		Help: "Rollout restarts of spec.rolloutRestartTargets for new tokens, by namespace and kind.",
	}, []string{"namespace", "kind"})
	loginDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokensync_login_duration_seconds",
		Help:    "Duration of provider logins, successful or not.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"provider"})
)

// The per-TokenRequest gauges are not kept as series: they are read from
// the cached TokenRequests' status at each scrape, as kube-state-metrics
// does. Nothing is stored per TokenRequest (three series each took about
// 1.5 KiB of heap), a deleted TokenRequest's series are gone with it, and a
// provider change leaves no stale series behind.
var (
	tokenExpiryDesc = prometheus.NewDesc("tokensync_token_expiry_timestamp_seconds",
		"Unix time at which the token held in the target Secret expires.", []string{"namespace", "name", "provider"}, nil)
	tokenRefreshDesc = prometheus.NewDesc("tokensync_token_refresh_timestamp_seconds",
		"Unix time of the next scheduled login (planned refresh or retry).", []string{"namespace", "name", "provider"}, nil)
	// Ready carries the endpoint host the TokenRequest logs in to, named
	// as tokensync_provider_host_up names it, so that a rule can join the
	// two (TokenSyncTokenRequestNotReady is held back while the host is
	// down): a label on a series every TokenRequest with a Ready condition
	// has anyway, not a series more each. It is a function of the spec,
	// one value per TokenRequest at a time.
	tokenRequestReadyDesc = prometheus.NewDesc("tokensync_tokenrequest_ready",
		"1 when the TokenRequest's Ready condition is True, 0 otherwise (endpoint_host: the host it logs in to, as tokensync_provider_host_up names it).", []string{"namespace", "name", "provider", "endpoint_host"}, nil)
	tokenRequestStalledDesc = prometheus.NewDesc("tokensync_tokenrequest_stalled",
		"1 when the TokenRequest's Stalled condition is True (reason: the condition's), 0 otherwise.", []string{"namespace", "name", "provider", "reason"}, nil)
	// The alerts' view of the schedule: when the token held is due (not
	// when the next attempt is, which a failure moves), and the window it
	// is due in, so that a rule can tell a late refresh from an early one
	// whatever the token's lifetime.
	tokenPlannedRefreshDesc = prometheus.NewDesc("tokensync_token_planned_refresh_timestamp_seconds",
		"Unix time of the planned refresh of the token held in the target Secret (not the next retry after a failure).", []string{"namespace", "name", "provider"}, nil)
	tokenRefreshWindowDesc = prometheus.NewDesc("tokensync_token_refresh_window_seconds",
		"How long before its expiry the token held in the target Secret is refreshed: its refresh window (spec.refreshBefore, or by default min(5m, lifetime/3)).", []string{"namespace", "name", "provider"}, nil)
	tokenRequestSuspendedDesc = prometheus.NewDesc("tokensync_tokenrequest_suspended",
		"1 when the TokenRequest's spec.suspend is true, 0 otherwise.", []string{"namespace", "name", "provider"}, nil)
	failedNamespacesDesc = prometheus.NewDesc("tokensync_clustertokenrequest_failed_namespaces",
		"Namespaces where the ClusterTokenRequest could not write its Secret (status.namespaces.failed).", []string{"namespace", "name", "provider"}, nil)
)

// statusMetrics collects the per-TokenRequest gauges from the caches of the
// running controllers (one in the operator; several in a test process).
type statusMetrics struct {
	mu      sync.Mutex
	readers map[*TokenRequestReconciler]statusReader
}

// statusReader is a manager's cache, whether that manager serves
// ClusterTokenRequests (only then are they listed: a manager sharded by
// namespace may not read them), and its providers (for their default
// endpoints).
type statusReader struct {
	client.Reader
	cluster   bool
	providers providers.Registry
}

var tokenRequestMetrics = &statusMetrics{readers: map[*TokenRequestReconciler]statusReader{}}

func init() {
	metrics.Registry.MustRegister(loginsTotal, loginDuration, rolloutRestartsTotal, tokenRequestMetrics, loginFailures, hostUp)
}

func (m *statusMetrics) add(r *TokenRequestReconciler, reader client.Reader, cluster bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.readers[r] = statusReader{Reader: reader, cluster: cluster, providers: r.Providers}
}

func (m *statusMetrics) remove(r *TokenRequestReconciler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.readers, r)
}

func (m *statusMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- tokenExpiryDesc
	ch <- tokenRefreshDesc
	ch <- tokenRequestReadyDesc
	ch <- tokenRequestStalledDesc
	ch <- tokenPlannedRefreshDesc
	ch <- tokenRefreshWindowDesc
	ch <- tokenRequestSuspendedDesc
	ch <- failedNamespacesDesc
}

// statusRefresh is the refresh planned for the token a status records
// (status.lastRefreshTime and status.expiresAt, whole seconds as the
// Secret's bookkeeping): plannedRefresh, as the reconciler plans it, and
// the token's refresh window. ok is false when no token is held.
func statusRefresh(uid types.UID, spec *tokensyncv1alpha1.LoginSpec, st *tokensyncv1alpha1.TokenStatus) (at time.Time, window time.Duration, ok bool) {
	if st.LastRefreshTime == nil || st.ExpiresAt == nil {
		return time.Time{}, 0, false
	}
	var refreshBefore *time.Duration
	if spec.RefreshBefore != nil {
		d := spec.RefreshBefore.Duration
		refreshBefore = &d
	}
	obtainedAt, expiresAt := st.LastRefreshTime.Truncate(time.Second), st.ExpiresAt.Truncate(time.Second)
	at = policy.PlannedRefresh(string(uid), obtainedAt, expiresAt, refreshBefore)
	return at, policy.RefreshWindow(obtainedAt, expiresAt, refreshBefore), true
}

// Collect reads the gauges of every TokenRequest and, in a manager that
// serves them, every ClusterTokenRequest (whose namespace label is empty).
func (m *statusMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	readers := make([]statusReader, 0, len(m.readers))
	for _, r := range m.readers {
		readers = append(readers, r)
	}
	m.mu.Unlock()
	seen := map[types.NamespacedName]bool{}
	// failed is status.namespaces.failed of a ClusterTokenRequest, nil for
	// a TokenRequest; registry, the providers of the manager whose cache
	// holds it.
	collect := func(key types.NamespacedName, uid types.UID, spec *tokensyncv1alpha1.LoginSpec, st *tokensyncv1alpha1.TokenStatus, failed *int32, registry providers.Registry) {
		if seen[key] {
			return // two managers watching one namespace (tests)
		}
		seen[key] = true
		labels := []string{key.Namespace, key.Name, string(spec.Provider)}
		if at, window, ok := statusRefresh(uid, spec, st); ok {
			ch <- prometheus.MustNewConstMetric(tokenPlannedRefreshDesc, prometheus.GaugeValue, float64(at.Unix()), labels...)
			ch <- prometheus.MustNewConstMetric(tokenRefreshWindowDesc, prometheus.GaugeValue, window.Seconds(), labels...)
		}
		suspended := 0.0
		if spec.Suspend {
			suspended = 1
		}
		ch <- prometheus.MustNewConstMetric(tokenRequestSuspendedDesc, prometheus.GaugeValue, suspended, labels...)
		if failed != nil {
			ch <- prometheus.MustNewConstMetric(failedNamespacesDesc, prometheus.GaugeValue, float64(*failed), labels...)
		}
		if t := st.ExpiresAt; t != nil {
			ch <- prometheus.MustNewConstMetric(tokenExpiryDesc, prometheus.GaugeValue, float64(t.Unix()), labels...)
		}
		if t := st.NextRefreshTime; t != nil {
			ch <- prometheus.MustNewConstMetric(tokenRefreshDesc, prometheus.GaugeValue, float64(t.Unix()), labels...)
		}
		if c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady); c != nil {
			ready := 0.0
			if c.Status == "True" {
				ready = 1
			}
			// The endpoint as the reconciler resolves it (the provider's
			// default when spec.endpoint is empty; none for a provider
			// this manager does not know), its host as the login gate
			// names it.
			host := ""
			if endpoint := registry[string(spec.Provider)].Endpoint(spec.Endpoint); endpoint != "" {
				host = endpointHost(endpoint)
			}
			ch <- prometheus.MustNewConstMetric(tokenRequestReadyDesc, prometheus.GaugeValue, ready, append(labels, host)...)
		}
		stalled, reason := 0.0, ""
		if c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionStalled); c != nil && c.Status == "True" {
			stalled, reason = 1, c.Reason
		}
		ch <- prometheus.MustNewConstMetric(tokenRequestStalledDesc, prometheus.GaugeValue, stalled, append(labels, reason)...)
	}
	for _, reader := range readers {
		list := &tokensyncv1alpha1.TokenRequestList{}
		if err := reader.List(context.Background(), list); err != nil {
			continue // a cache not started yet
		}
		for i := range list.Items {
			tr := &list.Items[i]
			collect(types.NamespacedName{Namespace: tr.Namespace, Name: tr.Name}, tr.UID, &tr.Spec.LoginSpec, &tr.Status.TokenStatus, nil, reader.providers)
		}
		if !reader.cluster {
			continue
		}
		clusterList := &tokensyncv1alpha1.ClusterTokenRequestList{}
		if err := reader.List(context.Background(), clusterList); err != nil {
			continue
		}
		for i := range clusterList.Items {
			ctr := &clusterList.Items[i]
			collect(types.NamespacedName{Name: ctr.Name}, ctr.UID, &ctr.Spec.LoginSpec, &ctr.Status.TokenStatus, &ctr.Status.Namespaces.Failed, reader.providers)
		}
	}
}

// Failed logins by endpoint host, for alerts on a provider host that fails
// many TokenRequests at once. The endpoint is chosen by whoever writes a
// TokenRequest, so the hosts counted are bounded: at most maxFailureHosts
// series (per provider and host, as the login rate limit counts hosts). A
// host that has not failed for failureHostIdle gives its place to a new one;
// while every place is held by a host that failed more recently, new hosts
// are counted as endpoint_host="other". A tenant's hosts can thus fill the
// places but never hide failures: they go to "other" and still alert.
const (
	maxFailureHosts = 64
	failureHostIdle = time.Hour
	otherHost       = "other"
)

var loginFailuresDesc = prometheus.NewDesc("tokensync_login_failures_total",
	"Failed logins, by provider and endpoint host (at most 64 hosts; hosts beyond are counted as \"other\").",
	[]string{"provider", "endpoint_host"}, nil)

var loginFailures = newHostFailures(time.Now)

type hostFailureKey struct{ provider, host string }

type hostFailureCount struct {
	n    float64
	last time.Time
}

type hostFailures struct {
	mu     sync.Mutex
	now    func() time.Time
	counts map[hostFailureKey]*hostFailureCount
	hosts  int // keys that are not otherHost
}

func newHostFailures(now func() time.Time) *hostFailures {
	return &hostFailures{now: now, counts: map[hostFailureKey]*hostFailureCount{}}
}

// inc counts a failed login of provider to endpoint.
func (h *hostFailures) inc(provider, endpoint string) {
	now := h.now()
	key := hostFailureKey{provider, endpointHost(endpoint)}
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.counts[key]
	if c == nil && key.host != otherHost {
		if h.hosts >= maxFailureHosts && !h.evictIdle(now) {
			key.host = otherHost
			c = h.counts[key]
		} else {
			h.hosts++
		}
	}
	if c == nil {
		c = &hostFailureCount{}
		h.counts[key] = c
	}
	c.n++
	c.last = now
}

// evictIdle forgets the host that failed longest ago, if that was more than
// failureHostIdle ago.
func (h *hostFailures) evictIdle(now time.Time) bool {
	var oldest hostFailureKey
	var at time.Time
	for k, c := range h.counts {
		if k.host != otherHost && (at.IsZero() || c.last.Before(at)) {
			oldest, at = k, c.last
		}
	}
	if at.IsZero() || now.Sub(at) < failureHostIdle {
		return false
	}
	delete(h.counts, oldest)
	h.hosts--
	return true
}

func (h *hostFailures) Describe(ch chan<- *prometheus.Desc) { ch <- loginFailuresDesc }

func (h *hostFailures) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, c := range h.counts {
		ch <- prometheus.MustNewConstMetric(loginFailuresDesc, prometheus.CounterValue, c.n, k.provider, k.host)
	}
}

// named are the endpoint hosts counted by name (not as "other").
func (h *hostFailures) named() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	var names []string
	for k := range h.counts {
		if k.host != otherHost && !seen[k.host] {
			seen[k.host] = true
			names = append(names, k.host)
		}
	}
	return names
}

// The health of provider hosts (hosthealth.go): 1 while a host is up, 0
// while it is down and its TokenRequests wait on it. Exported for the
// hosts tokensync_login_failures_total counts by name (at most 64: a host
// that never failed is up, and the rest have no series, not even
// "other"), from the login gates of the controllers running, which only
// the leader starts: a replica that does not lead exports none.
var hostUpDesc = prometheus.NewDesc("tokensync_provider_host_up",
	"1 while logins to the endpoint host go as usual, 0 while it is down and its TokenRequests wait on its probes (the hosts of tokensync_login_failures_total; exported by the leader).",
	[]string{"endpoint_host"}, nil)

type hostUpMetrics struct {
	mu       sync.Mutex
	gates    map[*loginGate]bool
	failures *hostFailures
}

var hostUp = &hostUpMetrics{gates: map[*loginGate]bool{}, failures: loginFailures}

func (m *hostUpMetrics) add(g *loginGate) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gates[g] = true
}

func (m *hostUpMetrics) remove(g *loginGate) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.gates, g)
}

func (m *hostUpMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- hostUpDesc }

// Collect exports each host's state; a host one of several gates (tests'
// managers) holds down is down.
func (m *hostUpMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	gates := make([]*loginGate, 0, len(m.gates))
	for g := range m.gates {
		gates = append(gates, g)
	}
	m.mu.Unlock()
	if len(gates) == 0 {
		return
	}
	for _, host := range m.failures.named() {
		up := 1.0
		for _, g := range gates {
			if g.isDown(host) {
				up = 0
			}
		}
		ch <- prometheus.MustNewConstMetric(hostUpDesc, prometheus.GaugeValue, up, host)
	}
}
