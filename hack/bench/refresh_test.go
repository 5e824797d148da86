package main

import (
	"testing"
	"time"
)

func TestPlanFor(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	// One TokenRequest's plans: tokens expiring at 20 s, 33 s and 46 s,
	// each to be replaced 6 s before.
	plans := []plannedRefresh{{at(20), at(14)}, {at(33), at(27)}, {at(46), at(40)}}
	tests := []struct {
		name   string
		expiry time.Time
		want   time.Time
		found  bool
	}{
		{"the same second", at(33), at(27), true},
		{"the exp claim a fraction later than the status's whole second", at(33.7), at(27), true},
		{"between two tokens, near neither", at(26.4), time.Time{}, false},
		{"two seconds off", at(48), at(40), true},
		{"no plan seen for this token", at(60), time.Time{}, false},
	}
	for _, tt := range tests {
		p, ok := planFor(plans, tt.expiry)
		if ok != tt.found || ok && !p.at.Equal(tt.want) {
			t.Errorf("%s: planFor(%s) = %s, %v; want %s, %v", tt.name, tt.expiry.Sub(t0), p.at.Sub(t0), ok, tt.want.Sub(t0), tt.found)
		}
	}
}
