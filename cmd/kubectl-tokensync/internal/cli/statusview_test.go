package cli

import (
	"bytes"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestStatusViews: the status list and detail of the fixtures at a fixed
// time, against testdata/*.golden (the README shows them).
func TestStatusViews(t *testing.T) {
	trs := []tokenObject{
		fromTokenRequest(rejectedTokenRequest()),
		fromTokenRequest(suspendedTokenRequest()),
		fromTokenRequest(readyTokenRequest()),
	}
	cluster := []tokenObject{fromClusterTokenRequest(failedNamespaceClusterTokenRequest())}
	for _, tc := range []struct {
		name         string
		objs         []tokenObject
		wide, withNS bool
	}{
		{name: "status", objs: trs},
		{name: "status-wide", objs: trs, wide: true},
		{name: "status-all-namespaces", objs: trs, withNS: true},
		{name: "status-cluster", objs: cluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := statusTable(&out, tc.objs, fixedNow, tc.wide, tc.withNS); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, out.String())
		})
	}

	t.Run("status-detail", func(t *testing.T) {
		var out bytes.Buffer
		secret := &secretRead{Name: "partner-token", Annotations: targetSecret("not-a-jwt").Annotations}
		events := eventsRead{Events: []corev1.Event{
			eventAt(-26*time.Hour, corev1.EventTypeNormal, "TokenRefreshed", "Logged in because the target Secret partner-token does not exist; wrote a new token to Secret partner-token; it expires at "+rfc(-23*time.Hour)+", next refresh at "+rfc(-23*time.Hour-5*time.Minute)),
			eventAt(-19*time.Minute, corev1.EventTypeNormal, "TokenRefreshed", "Logged in because the token is due for refresh; wrote a new token to Secret partner-token; it expires at "+rfc(2*time.Hour+41*time.Minute)+", next refresh at "+rfc(2*time.Hour+36*time.Minute)),
		}}
		if err := statusDetail(&out, fromTokenRequest(readyTokenRequest()), secret, events, fixedNow); err != nil {
			t.Fatal(err)
		}
		golden(t, "status-detail", out.String())
	})

	t.Run("status-detail-rejected", func(t *testing.T) {
		var out bytes.Buffer
		forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "aml-token",
			errors.New(`User "jane" cannot get resource "secrets" in API group "" in the namespace "team-a"`))
		secret := &secretRead{Name: "aml-token", Err: refused(forbidden, "read Secret team-a/aml-token", roleSecrets)}
		ev := eventAt(-3*time.Minute, corev1.EventTypeWarning, "AuthenticationFailed", "AML Watcher rejected the credentials (HTTP 401): check email and password in the credentials Secret")
		ev.Series = &corev1.EventSeries{Count: 2, LastObservedTime: *microAt(-time.Minute)}
		if err := statusDetail(&out, fromTokenRequest(rejectedTokenRequest()), secret, eventsRead{Events: []corev1.Event{ev}}, fixedNow); err != nil {
			t.Fatal(err)
		}
		golden(t, "status-detail-rejected", out.String())
	})

	t.Run("status-cluster-detail", func(t *testing.T) {
		var out bytes.Buffer
		events := []corev1.Event{
			eventAt(-13*time.Minute, corev1.EventTypeWarning, "SecretConflict", "Secret shared-token not written in 1 of 3 namespaces: team-c"),
			eventAt(-13*time.Minute, corev1.EventTypeNormal, "TokenRefreshed", "Logged in because the token is due for refresh; wrote a new token to Secret shared-token in 2 namespaces; it expires at "+rfc(47*time.Minute)+", next refresh at "+rfc(42*time.Minute)),
		}
		if err := statusDetail(&out, fromClusterTokenRequest(failedNamespaceClusterTokenRequest()), nil, eventsRead{Events: events}, fixedNow); err != nil {
			t.Fatal(err)
		}
		golden(t, "status-cluster-detail", out.String())
	})
}

// TestStatusDetailKeepsTheLastTenEvents: the ten most recent, oldest first.
func TestStatusDetailKeepsTheLastTenEvents(t *testing.T) {
	var evs []corev1.Event
	for i := 15; i >= 1; i-- { // listed newest first: the order is the view's to make
		evs = append(evs, eventAt(-time.Duration(i)*time.Minute, corev1.EventTypeNormal, "TokenRefreshed", "refresh"))
	}
	var out bytes.Buffer
	if err := eventList(&out, eventsRead{Events: evs}, fixedNow); err != nil {
		t.Fatal(err)
	}
	want := "Events (last 10):\n  LAST SEEN   TYPE     REASON           MESSAGE\n"
	for i := 10; i >= 1; i-- {
		want += "  " + pad(relative(fixedNow, fixedNow.Add(-time.Duration(i)*time.Minute)), 12) + "Normal   TokenRefreshed   refresh\n"
	}
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func pad(s string, n int) string {
	for len(s) < n {
		s += " "
	}
	return s
}
