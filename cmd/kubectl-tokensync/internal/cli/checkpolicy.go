package cli

import (
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
)

// leaseFresh is how recently the operator's Lease must have been renewed
// for check to call the operator running: the manager renews it every 2 s
// (its retry period) and gives it up after 10 s without renewal (its renew
// deadline), so 30 s leaves room for clock skew and a slow API server.
const leaseFresh = 30 * time.Second

// leaseHeld says whether a replica of the operator leads: the Lease has a
// holder that renewed it within leaseFresh of now. why says what is wrong
// when it is not held.
func leaseHeld(l *coordinationv1.Lease, now time.Time) (held bool, why string) {
	holder := ""
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if holder == "" {
		return false, "no replica holds it (the last leader stepped down, or none has started)"
	}
	if l.Spec.RenewTime == nil {
		return false, fmt.Sprintf("held by %s, who never renewed it", printable(holder))
	}
	if age := now.Sub(l.Spec.RenewTime.Time); age > leaseFresh {
		return false, fmt.Sprintf("held by %s, who last renewed it %s, more than %s ago: the operator is not running, or cannot reach the API server",
			printable(holder), relative(now, l.Spec.RenewTime.Time), leaseFresh)
	}
	return true, ""
}
