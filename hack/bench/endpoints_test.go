package main

import (
	"net"
	"testing"
	"time"

	"github.com/tokensync/tokensync/internal/endpointpolicy"
	"github.com/tokensync/tokensync/providers/providertest"
)

// TestEndpointsAllowed checks that the operator's endpoint policy, as the
// bench runs it (no allowlist, --allow-loopback-endpoints), accepts the
// endpoints the bench spreads TokenRequests over, by login URL and by the
// address dialled, and that the policy without the flag would not.
func TestEndpointsAllowed(t *testing.T) {
	policy, err := endpointpolicy.Parse("", endpointpolicy.Rules{AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	pool := newEndpointPool(providertest.New(), &addressCounter{n: 254*256 - 2})
	defer pool.close()
	// The counter starts near the end of 127.1.x.x, so the hosts cross
	// into 127.2.0.1.
	urls, err := pool.hosts(4)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.1.255.253", "127.1.255.254", "127.2.0.1", "127.2.0.2"}
	for i, u := range urls {
		host, _, err := net.SplitHostPort(u[len("http://"):])
		if err != nil || host != want[i] {
			t.Errorf("host %d is %s (%v), want %s", i, u, err, want[i])
		}
		for _, p := range providerNames {
			if err := policy.Check(p, u); err != nil {
				t.Errorf("the endpoint policy refuses %s for %s: %v", u, p, err)
			}
			if err := (*endpointpolicy.Policy)(nil).Check(p, u); err == nil {
				t.Errorf("without --allow-loopback-endpoints the policy allows %s for %s", u, p)
			}
		}
		if err := policy.DialControl("tcp", u[len("http://"):], nil); err != nil {
			t.Errorf("the dial check refuses %s: %v", u, err)
		}
	}
}

func TestPeakPerSecond(t *testing.T) {
	pool := newEndpointPool(providertest.New(), &addressCounter{})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms ...int) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	pool.requests["127.1.0.1:80"] = at(0, 100, 200, 999, 1000, 1001, 1500)
	pool.requests["127.1.0.2:80"] = at(5000, 5000, 5001)
	pool.requests["127.1.0.3:80"] = at(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	tests := []struct {
		name     string
		urls     []string
		from, to time.Time
		want     hostRate
	}{
		{"sliding second", []string{"http://127.1.0.1:80"}, t0, t0.Add(time.Minute), hostRate{Peak: 5, Host: "127.1.0.1:80"}},
		{"busiest host", []string{"http://127.1.0.1:80", "http://127.1.0.2:80"}, t0, t0.Add(time.Minute), hostRate{Peak: 5, Host: "127.1.0.1:80"}},
		{"window", []string{"http://127.1.0.1:80", "http://127.1.0.2:80"}, t0.Add(2 * time.Second), t0.Add(time.Minute), hostRate{Peak: 3, Host: "127.1.0.2:80"}},
		{"another batch's host is not counted", []string{"http://127.1.0.2:80"}, t0, t0.Add(time.Minute), hostRate{Peak: 3, Host: "127.1.0.2:80"}},
		{"nothing", []string{"http://127.1.0.9:80"}, t0, t0.Add(time.Minute), hostRate{}},
	}
	for _, tt := range tests {
		if got := pool.peakPerSecond(tt.urls, tt.from, tt.to); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
