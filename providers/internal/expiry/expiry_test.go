package expiry

import (
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/jwt"
)

func TestFromJWT(t *testing.T) {
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
		{name: "exactly a year", iat: now, exp: at(MaxLifetime), want: at(MaxLifetime)},
		{name: "a year and a second", iat: now, exp: at(MaxLifetime + time.Second)},
		{name: "millennia", iat: time.Unix(0, 0), exp: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{name: "zero lifetime", iat: at(-time.Hour), exp: at(-time.Hour)},
		{name: "exp before iat", iat: now, exp: at(-time.Second)},
		{name: "only exp, future", exp: at(20 * time.Minute), want: at(20 * time.Minute)},
		{name: "only exp, now", exp: now},
		{name: "only exp, past", exp: at(-time.Minute)},
		{name: "only exp, over a year", exp: at(MaxLifetime + time.Minute)},
		{name: "no exp", iat: now},
		{name: "nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromJWT("Test", jwt.Claims{IssuedAt: tc.iat, ExpiresAt: tc.exp}, now)
			if tc.want.IsZero() {
				if err == nil || providers.KindOf(err) != providers.InvalidResponse {
					t.Fatalf("FromJWT = %s, %v; want InvalidResponse", got, err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("FromJWT = %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		expiresAt time.Time
		ok        bool
	}{
		{now.Add(time.Nanosecond), true},
		{now.Add(3 * time.Hour), true},
		{now.Add(MaxLifetime), true},
		{now, false},
		{now.Add(-time.Hour), false},
		{time.Time{}, false},
		{now.Add(MaxLifetime + time.Nanosecond), false},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		err := Check("Test", now, tc.expiresAt)
		if (err == nil) != tc.ok || (err != nil && providers.KindOf(err) != providers.InvalidResponse) {
			t.Errorf("Check(%s) = %v, want ok=%v", tc.expiresAt, err, tc.ok)
		}
	}
}
