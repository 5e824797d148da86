package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics exported on the manager's metrics endpoint.
var (
	tokenExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tokensync_token_expiry_timestamp_seconds",
		Help: "Unix time at which the token held in the target Secret expires.",
	}, []string{"namespace", "name", "provider"})
	tokenRefresh = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tokensync_token_refresh_timestamp_seconds",
		Help: "Unix time of the next scheduled login (planned refresh or retry).",
	}, []string{"namespace", "name", "provider"})
	tokenRequestReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tokensync_tokenrequest_ready",
		Help: "1 when the TokenRequest's Ready condition is True, 0 otherwise.",
	}, []string{"namespace", "name", "provider"})
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

func init() {
	metrics.Registry.MustRegister(tokenExpiry, tokenRefresh, tokenRequestReady, loginsTotal, loginDuration, rolloutRestartsTotal)
}

// forgetMetrics removes a deleted TokenRequest's series.
func forgetMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "name": name}
	tokenExpiry.DeletePartialMatch(labels)
	tokenRefresh.DeletePartialMatch(labels)
	tokenRequestReady.DeletePartialMatch(labels)
}

// forgetProviderMetrics removes a TokenRequest's series of one provider.
func forgetProviderMetrics(namespace, name, provider string) {
	labels := prometheus.Labels{"namespace": namespace, "name": name, "provider": provider}
	tokenExpiry.Delete(labels)
	tokenRefresh.Delete(labels)
	tokenRequestReady.Delete(labels)
}
