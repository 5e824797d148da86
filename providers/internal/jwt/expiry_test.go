package jwt

import (
	"testing"
	"time"
)

func TestClaimsExpiry(t *testing.T) {
	// Our clock; the provider's may be anywhere.
	obtainedAt := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	providerNow := time.Date(2023, 8, 4, 12, 14, 17, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		claims Claims
		want   time.Time
		ok     bool
	}{
		{"iat and exp: exp-iat from obtainedAt", Claims{IssuedAt: providerNow, ExpiresAt: providerNow.Add(time.Hour)}, obtainedAt.Add(time.Hour), true},
		{"only exp: as given", Claims{ExpiresAt: providerNow}, providerNow, true},
		{"exp before iat: before obtainedAt", Claims{IssuedAt: providerNow, ExpiresAt: providerNow.Add(-time.Second)}, obtainedAt.Add(-time.Second), true},
		{"no exp", Claims{IssuedAt: providerNow}, time.Time{}, false},
		{"nothing", Claims{}, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.claims.Expiry(obtainedAt)
			if ok != tc.ok || !got.Equal(tc.want) {
				t.Errorf("Expiry = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
