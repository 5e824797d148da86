package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
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
