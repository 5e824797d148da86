package main

import (
	"strings"
	"testing"
)

// TestMetrics checks the lookups the bench makes on a real exposition:
// counters by label, gauges, and a histogram's sum and count.
func TestMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(`# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",resource="secrets",subresource="",verb="POST"} 12
apiserver_request_total{code="409",resource="tokenrequests",subresource="status",verb="PUT"} 3
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 2.5e+07
# TYPE workqueue_queue_duration_seconds histogram
workqueue_queue_duration_seconds_bucket{name="tokenrequest",le="+Inf"} 4
workqueue_queue_duration_seconds_sum{name="tokenrequest"} 0.5
workqueue_queue_duration_seconds_count{name="tokenrequest"} 4
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"POST secrets", m.value("apiserver_request_total", map[string]string{"verb": "POST", "resource": "secrets"}), 12},
		{"all requests", m.value("apiserver_request_total", nil), 15},
		{"heap", m.value("go_memstats_heap_inuse_bytes", nil), 25e6},
		{"queue wait", m.value("workqueue_queue_duration_seconds", map[string]string{"name": "tokenrequest"}), 0.5},
		{"queued", m.observations("workqueue_queue_duration_seconds", map[string]string{"name": "tokenrequest"}), 4},
		{"missing family", m.value("nothing_total", nil), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}
