package providers

import (
	"testing"
	"time"
)

func TestExpiryFromJWT(t *testing.T) {
	// Our clock; the provider's may be anywhere.
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	for _, tc := range []struct {
		name     string
		iat, exp time.Time
		want     time.Time // zero: InvalidResponse
	}{
		{name: "clocks agree", iat: now, exp: at(time.Hour), want: at(time.Hour)},
		{name: "provider clock 10 minutes ahead", iat: at(10 * time.Minute), exp: at(70 * time.Minute), want: at(time.Hour)},
		{name: "provider clock 2 hours behind", iat: at(-2 * time.Hour), exp: at(-time.Hour), want: at(time.Hour)},
		{name: "provider clock years behind", iat: time.Unix(1691151257, 0), exp: time.Unix(1691154857, 0), want: at(time.Hour)},
		{name: "sub-second lifetime", iat: now, exp: at(1500 * time.Millisecond), want: at(1500 * time.Millisecond)},
		{name: "exactly a year", iat: now, exp: at(MaxTokenLifetime), want: at(MaxTokenLifetime)},
		{name: "a year and a second", iat: now, exp: at(MaxTokenLifetime + time.Second)},
		{name: "millennia", iat: time.Unix(0, 0), exp: time.Unix(maxClaimSeconds, 0)},
		{name: "zero lifetime", iat: at(-time.Hour), exp: at(-time.Hour)},
		{name: "exp before iat", iat: now, exp: at(-time.Second)},
		{name: "only exp, future", exp: at(20 * time.Minute), want: at(20 * time.Minute)},
		{name: "only exp, now", exp: now},
		{name: "only exp, past", exp: at(-time.Minute)},
		{name: "only exp, over a year", exp: at(MaxTokenLifetime + time.Minute)},
		{name: "no exp", iat: now},
		{name: "nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExpiryFromJWT("Test", JWTClaims{IssuedAt: tc.iat, ExpiresAt: tc.exp}, now)
			if tc.want.IsZero() {
				if err == nil || KindOf(err) != InvalidResponse {
					t.Fatalf("ExpiryFromJWT = %s, %v; want InvalidResponse", got, err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("ExpiryFromJWT = %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestCheckExpiry(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		expiresAt time.Time
		ok        bool
	}{
		{now.Add(time.Nanosecond), true},
		{now.Add(3 * time.Hour), true},
		{now.Add(MaxTokenLifetime), true},
		{now, false},
		{now.Add(-time.Hour), false},
		{time.Time{}, false},
		{now.Add(MaxTokenLifetime + time.Nanosecond), false},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		err := CheckExpiry("Test", now, tc.expiresAt)
		if (err == nil) != tc.ok || (err != nil && KindOf(err) != InvalidResponse) {
			t.Errorf("CheckExpiry(%s) = %v, want ok=%v", tc.expiresAt, err, tc.ok)
		}
	}
}
