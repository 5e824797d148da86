package cli

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRelative(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "now"},
		{400 * time.Millisecond, "now"},
		{-400 * time.Millisecond, "now"},
		{600 * time.Millisecond, "in 1s"},
		{45 * time.Second, "in 45s"},
		{-45 * time.Second, "45s ago"},
		{3 * time.Minute, "in 3m"},
		{-3 * time.Minute, "3m ago"},
		{3*time.Minute + 12*time.Second, "in 3m12s"},
		{9*time.Minute + 59*time.Second, "in 9m59s"},
		{41*time.Minute + 59*time.Second, "in 41m"},
		{time.Hour, "in 1h"},
		{2*time.Hour + 41*time.Minute + 30*time.Second, "in 2h41m"},
		{-(2*time.Hour + 41*time.Minute), "2h41m ago"},
		{23*time.Hour + 59*time.Minute, "in 23h59m"},
		{24 * time.Hour, "in 1d"},
		{3*24*time.Hour + 5*time.Hour + 10*time.Minute, "in 3d5h"},
		{40 * 24 * time.Hour, "in 40d"},
		{3 * 365 * 24 * time.Hour, "in 3y"},
	} {
		if got := relative(fixedNow, fixedNow.Add(tc.d)); got != tc.want {
			t.Errorf("relative(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := relative(fixedNow, time.Time{}); got != "-" {
		t.Errorf("relative(zero time) = %q, want -", got)
	}
	if got := relativeMeta(fixedNow, nil); got != "-" {
		t.Errorf("relativeMeta(nil) = %q, want -", got)
	}
	if got, want := whenMeta(fixedNow, &metav1.Time{Time: fixedNow.Add(-3 * time.Minute)}), "3m ago (2026-03-01T11:57:00Z)"; got != want {
		t.Errorf("whenMeta = %q, want %q", got, want)
	}
}
