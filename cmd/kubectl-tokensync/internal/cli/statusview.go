package cli

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/liggitt/tabwriter"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/printers"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// maxEvents is how many events status NAME shows: the most recent.
const maxEvents = 10

// statusTable prints one line per object: name, provider, Ready and its
// reason, when the token expires, the next refresh, failed attempts, the
// Secret; for ClusterTokenRequests the namespaces written of those
// selected. wide adds the last attempt and the endpoint; withNamespace the
// namespace column (-A).
func statusTable(out io.Writer, objs []tokenObject, now time.Time, wide, withNamespace bool) error {
	w := printers.GetNewTabWriter(out)
	cluster := len(objs) > 0 && objs[0].Cluster != nil
	var head []string
	if withNamespace && !cluster {
		head = append(head, "NAMESPACE")
	}
	head = append(head, "NAME", "PROVIDER", "READY", "REASON", "EXPIRES", "NEXT REFRESH", "FAILED", "SECRET")
	if cluster {
		head = append(head, "NAMESPACES")
	}
	if wide {
		head = append(head, "LAST ATTEMPT", "ENDPOINT")
	}
	fmt.Fprintln(w, strings.Join(head, "\t"))
	for _, o := range objs {
		var row []string
		if withNamespace && !cluster {
			row = append(row, o.Object.GetNamespace())
		}
		status, reason := readyOf(o.Status)
		row = append(row, o.Object.GetName(), string(o.Spec.Provider), status, reason,
			relativeMeta(now, o.Status.ExpiresAt), relativeMeta(now, o.Status.NextRefreshTime),
			strconv.Itoa(int(o.Status.FailedAttempts)), dash(o.secretName()))
		if cluster {
			row = append(row, namespaceCounts(o.Cluster.Status.Namespaces))
		}
		if wide {
			row = append(row, lastAttemptShort(o.Status.LastAttempt, now), endpointOf(o.Spec, "(default)"))
		}
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	return w.Flush()
}

// readyOf is the Ready condition's status and reason, "-" when unset.
func readyOf(st *tokensyncv1alpha1.TokenStatus) (status, reason string) {
	c := meta.FindStatusCondition(st.Conditions, tokensyncv1alpha1.ConditionReady)
	if c == nil {
		return "-", "-"
	}
	return string(c.Status), dash(printable(c.Reason))
}

// namespaceCounts is "2/3" (written of selected), "2/3 (1 failed)".
func namespaceCounts(n tokensyncv1alpha1.NamespaceCounts) string {
	s := fmt.Sprintf("%d/%d", n.Written, n.Selected)
	if n.Failed > 0 {
		s += fmt.Sprintf(" (%d failed)", n.Failed)
	}
	return s
}

func lastAttemptShort(a *tokensyncv1alpha1.LoginAttempt, now time.Time) string {
	if a == nil {
		return "-"
	}
	return relative(now, a.Time.Time) + " " + printable(a.Result)
}

// endpointOf is spec.endpoint, or what to say when it is unset.
func endpointOf(spec *tokensyncv1alpha1.LoginSpec, unset string) string {
	if spec.Endpoint == "" {
		return unset
	}
	return spec.Endpoint
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// secretRead is the target Secret's bookkeeping, its annotations, as
// status NAME could read them.
type secretRead struct {
	Name        string
	Annotations map[string]string
	Err         error
}

// eventsRead is the events of an object as status NAME could read them.
type eventsRead struct {
	Events []corev1.Event
	Err    error
}

// statusDetail is status NAME: the object's fields, its conditions with
// their messages, the last login attempt, the target Secret's bookkeeping
// (a TokenRequest's), the namespaces that failed (a ClusterTokenRequest's)
// and the last events.
func statusDetail(out io.Writer, o tokenObject, secret *secretRead, events eventsRead, now time.Time) error {
	w := printers.GetNewTabWriter(out)
	st := o.Status
	line := func(label, value string) { fmt.Fprintf(w, "%s:\t%s\n", label, value) }
	line("Name", o.Object.GetName())
	if ns := o.Object.GetNamespace(); ns != "" {
		line("Namespace", ns)
	}
	line("Kind", o.Kind)
	line("Provider", string(o.Spec.Provider))
	line("Endpoint", endpointOf(o.Spec, "the provider's default"))
	line("Secret", dash(o.secretName()))
	status, reason := readyOf(st)
	line("Ready", status+" ("+reason+")")
	if o.Spec.Suspend {
		line("Suspended", "yes (spec.suspend): nothing is sent or written until it is false")
	}
	line("Token expires", whenMeta(now, st.ExpiresAt))
	line("Last refresh", whenMeta(now, st.LastRefreshTime))
	line("Next refresh", whenMeta(now, st.NextRefreshTime))
	line("Failed attempts", strconv.Itoa(int(st.FailedAttempts)))
	if st.LastForceRefresh != "" {
		line("Last force-refresh", strconv.Quote(st.LastForceRefresh))
	}
	if o.Cluster != nil {
		line("Namespaces", namespaceCounts(o.Cluster.Status.Namespaces)+" written of selected")
	}
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out, "Conditions:")
	if len(st.Conditions) == 0 {
		fmt.Fprintln(out, "  none yet: the operator has not acted on it")
	} else {
		tw := indented(out)
		fmt.Fprintln(tw, "TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
		for _, c := range st.Conditions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(c.Type), c.Status, dash(printable(c.Reason)),
				relative(now, c.LastTransitionTime.Time), dash(printable(c.Message)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(out, "Last attempt:")
	if a := st.LastAttempt; a == nil {
		fmt.Fprintln(out, "  none")
	} else {
		tw := indented(out)
		fmt.Fprintf(tw, "Time:\t%s\n", when(now, a.Time.Time))
		fmt.Fprintf(tw, "Provider:\t%s\n", dash(printable(a.Provider)))
		fmt.Fprintf(tw, "Endpoint:\t%s\n", dash(printable(a.Endpoint)))
		fmt.Fprintf(tw, "Result:\t%s\n", dash(printable(a.Result)))
		if a.AuthenticationFailures > 0 {
			fmt.Fprintf(tw, "Authentication failures:\t%d in a row (the operator stops at %d)\n", a.AuthenticationFailures, tokensyncv1alpha1.MaxAuthenticationFailures)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if secret != nil {
		if err := secretBookkeeping(out, secret, now); err != nil {
			return err
		}
	}

	if o.Cluster != nil {
		fmt.Fprintln(out, "Failed namespaces:")
		if len(o.Cluster.Status.FailedNamespaces) == 0 {
			fmt.Fprintln(out, "  none")
		} else {
			tw := indented(out)
			fmt.Fprintln(tw, "NAMESPACE\tREASON\tMESSAGE")
			for _, f := range o.Cluster.Status.FailedNamespaces {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", printable(f.Name), dash(printable(f.Reason)), dash(printable(f.Message)))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if n := o.Cluster.Status.Namespaces.Failed; int(n) > len(o.Cluster.Status.FailedNamespaces) {
				fmt.Fprintf(out, "  (%d failed in all; the status names the first %d)\n", n, len(o.Cluster.Status.FailedNamespaces))
			}
		}
	}

	return eventList(out, events, now)
}

// secretBookkeeping prints what the operator recorded on the target Secret.
func secretBookkeeping(out io.Writer, s *secretRead, now time.Time) error {
	fmt.Fprintf(out, "Secret %s:\n", s.Name)
	switch {
	case apierrors.IsNotFound(s.Err):
		fmt.Fprintln(out, "  not found")
		return nil
	case s.Err != nil:
		fmt.Fprintf(out, "  not shown: %s\n", printable(s.Err.Error()))
		return nil
	}
	a := s.Annotations
	tw := indented(out)
	fmt.Fprintf(tw, "Provider:\t%s\n", dash(printable(a[tokensyncv1alpha1.AnnotationProvider])))
	fmt.Fprintf(tw, "Endpoint:\t%s\n", dash(printable(a[tokensyncv1alpha1.AnnotationEndpoint])))
	fmt.Fprintf(tw, "Obtained:\t%s\n", annotatedTime(a[tokensyncv1alpha1.AnnotationObtainedAt], now))
	fmt.Fprintf(tw, "Expires:\t%s\n", annotatedTime(a[tokensyncv1alpha1.AnnotationExpiresAt], now))
	return tw.Flush()
}

// annotatedTime reads an RFC 3339 annotation and says when it is.
func annotatedTime(v string, now time.Time) string {
	if v == "" {
		return "-"
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return "unreadable: " + strconv.Quote(v)
	}
	return when(now, t)
}

// eventList prints the last maxEvents events, oldest first.
func eventList(out io.Writer, events eventsRead, now time.Time) error {
	fmt.Fprintf(out, "Events (last %d):\n", maxEvents)
	if events.Err != nil {
		fmt.Fprintf(out, "  not shown: %s\n", printable(events.Err.Error()))
		return nil
	}
	evs := slices.Clone(events.Events)
	slices.SortStableFunc(evs, func(a, b corev1.Event) int {
		return cmp.Or(eventTime(a).Compare(eventTime(b)), strings.Compare(a.Reason, b.Reason), strings.Compare(a.Message, b.Message))
	})
	if len(evs) > maxEvents {
		evs = evs[len(evs)-maxEvents:]
	}
	if len(evs) == 0 {
		fmt.Fprintln(out, "  none")
		return nil
	}
	tw := indented(out)
	fmt.Fprintln(tw, "LAST SEEN\tTYPE\tREASON\tMESSAGE")
	for _, e := range evs {
		msg := printable(e.Message)
		if n := eventCount(e); n > 1 {
			msg += fmt.Sprintf(" (x%d)", n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", relative(now, eventTime(e)), printable(e.Type), printable(e.Reason), msg)
	}
	return tw.Flush()
}

// eventTime is when an event was last seen: events written through
// events.k8s.io (as the operator writes them) carry eventTime and a
// series; older ones lastTimestamp.
func eventTime(e corev1.Event) time.Time {
	if e.Series != nil && !e.Series.LastObservedTime.IsZero() {
		return e.Series.LastObservedTime.Time
	}
	return cmp.Or(e.LastTimestamp.Time, e.EventTime.Time, e.FirstTimestamp.Time, e.CreationTimestamp.Time)
}

func eventCount(e corev1.Event) int32 {
	if e.Series != nil {
		return e.Series.Count
	}
	return e.Count
}

// indented is a table two spaces in, under a section's title.
func indented(out io.Writer) *tabwriter.Writer {
	return printers.GetNewTabWriter(&prefixWriter{w: out, prefix: "  "})
}

// prefixWriter puts prefix before every line written through it.
type prefixWriter struct {
	w      io.Writer
	prefix string
	mid    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var sb strings.Builder
	for _, c := range b {
		if !p.mid {
			sb.WriteString(p.prefix)
			p.mid = true
		}
		sb.WriteByte(c)
		if c == '\n' {
			p.mid = false
		}
	}
	if _, err := io.WriteString(p.w, sb.String()); err != nil {
		return 0, err
	}
	return len(b), nil
}
