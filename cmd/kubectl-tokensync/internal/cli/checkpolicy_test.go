package cli

import (
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLeaseHeld(t *testing.T) {
	lease := func(holder string, renewed *time.Duration) *coordinationv1.Lease {
		l := &coordinationv1.Lease{}
		if holder != "" {
			l.Spec.HolderIdentity = &holder
		}
		if renewed != nil {
			mt := metav1.NewMicroTime(fixedNow.Add(-*renewed))
			l.Spec.RenewTime = &mt
		}
		return l
	}
	ago := func(d time.Duration) *time.Duration { return &d }
	for _, tc := range []struct {
		name    string
		lease   *coordinationv1.Lease
		held    bool
		whySays string
	}{
		{"renewed just now", lease("tokensync-7d9f_1a2b", ago(2*time.Second)), true, ""},
		{"renewed 30s ago", lease("tokensync-7d9f_1a2b", ago(30*time.Second)), true, ""},
		{"renewed 31s ago", lease("tokensync-7d9f_1a2b", ago(31*time.Second)), false, "held by tokensync-7d9f_1a2b, who last renewed it 31s ago, more than 30s ago"},
		{"released", lease("", ago(time.Second)), false, "no replica holds it"},
		{"never renewed", lease("tokensync-7d9f_1a2b", nil), false, "who never renewed it"},
		{"holder with escapes", lease("evil\x1b[2J", ago(time.Hour)), false, `held by evil\x1b[2J`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held, why := leaseHeld(tc.lease, fixedNow)
			if held != tc.held || !strings.Contains(why, tc.whySays) {
				t.Errorf("leaseHeld = %v, %q; want %v, saying %q", held, why, tc.held, tc.whySays)
			}
		})
	}
}
