package main

import (
	"testing"
	"time"
)

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
