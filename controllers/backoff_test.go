package controllers

import (
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
)

func TestBackoffFor(t *testing.T) {
	tests := []struct {
		name       string
		kind       providers.ErrorKind
		attempts   int32
		jitter     float64
		retryAfter time.Duration
		want       time.Duration
	}{
		{"first transient failure", providers.ProviderUnavailable, 1, 0, 0, 5 * time.Second},
		{"second", providers.ProviderUnavailable, 2, 0, 0, 10 * time.Second},
		{"sixth", providers.ProviderUnavailable, 6, 0, 0, 160 * time.Second},
		{"capped at 5m", providers.ProviderUnavailable, 7, 0, 0, 5 * time.Minute},
		{"huge attempt count stays capped", providers.InvalidResponse, 1 << 30, 0, 0, 5 * time.Minute},
		{"zero attempts is the first", providers.ProviderUnavailable, 0, 0, 0, 5 * time.Second},
		{"jitter shortens by up to 25%", providers.ProviderUnavailable, 1, 0.5, 0, 4375 * time.Millisecond},
		{"auth failure starts at 1m", providers.AuthenticationFailed, 1, 0, 0, time.Minute},
		{"auth failure doubles", providers.AuthenticationFailed, 3, 0, 0, 4 * time.Minute},
		{"auth failure capped at 1h", providers.AuthenticationFailed, 10, 0, 0, time.Hour},
		{"Retry-After longer than backoff is honoured", providers.ProviderUnavailable, 1, 0, 42 * time.Second, 42 * time.Second},
		{"Retry-After shorter than backoff is ignored", providers.ProviderUnavailable, 3, 0, 2 * time.Second, 20 * time.Second},
		{"Retry-After beyond the cap is capped", providers.ProviderUnavailable, 1, 0, 2 * time.Hour, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoffFor(tt.kind, tt.attempts, tt.jitter, tt.retryAfter); got != tt.want {
				t.Errorf("backoffFor = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	for n := int32(1); n < 40; n++ {
		for _, j := range []float64{0, 0.3, 0.99} {
			d := backoffFor(providers.ProviderUnavailable, n, j, 0)
			if d < backoffBase*3/4 || d > backoffCap {
				t.Fatalf("attempt %d jitter %v: %s outside [%s, %s]", n, j, d, backoffBase*3/4, backoffCap)
			}
			a := backoffFor(providers.AuthenticationFailed, n, j, 0)
			if a < authBackoffBase*3/4 || a > authBackoffCap {
				t.Fatalf("auth attempt %d jitter %v: %s out of bounds", n, j, a)
			}
		}
	}
}
