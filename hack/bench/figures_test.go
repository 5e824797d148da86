package main

import (
	"testing"
	"time"
)

func TestParseMetrics(t *testing.T) {
	text := []byte(`# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",resource="secrets",subresource="",verb="POST"} 12
apiserver_request_total{code="409",resource="tokenrequests",subresource="status",verb="PUT"} 3
go_memstats_heap_inuse_bytes 2.5e+07
weird_label{msg="a \"quoted\", comma}"} 1
not a sample
`)
	s := parseMetrics(text)
	if got := sumOf(s, "apiserver_request_total", map[string]string{"verb": "POST", "resource": "secrets"}); got != 12 {
		t.Errorf("POST secrets = %v, want 12", got)
	}
	if got := sumOf(s, "apiserver_request_total", nil); got != 15 {
		t.Errorf("all requests = %v, want 15", got)
	}
	if got := sumOf(s, "go_memstats_heap_inuse_bytes", nil); got != 25e6 {
		t.Errorf("heap = %v, want 2.5e7", got)
	}
	if got := sumOf(s, "weird_label", map[string]string{"msg": `a "quoted", comma}`}); got != 1 {
		t.Errorf("escaped label not read: %v", got)
	}
}

func TestMaxAttempts(t *testing.T) {
	// Shortest waits: 3.75s, 7.5s, 15s, 30s, 60s, ... after each failure.
	tests := []struct {
		within time.Duration
		want   int
	}{
		{0, 1},
		{3 * time.Second, 1},
		{3750 * time.Millisecond, 2},
		{11250 * time.Millisecond, 3},
		{time.Minute, 5},
		{2 * time.Minute, 6},
	}
	for _, tt := range tests {
		if got := maxAttempts(tt.within); got != tt.want {
			t.Errorf("maxAttempts(%s) = %d, want %d", tt.within, got, tt.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := percentile(ds, 50); got != 100*time.Millisecond {
		t.Errorf("p50 = %s, want 100ms", got)
	}
	if got := percentile(ds, 99); got != 198*time.Millisecond {
		t.Errorf("p99 = %s, want 198ms", got)
	}
}
