package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// renewPoll is how often renew --wait reads the objects again.
const renewPoll = 500 * time.Millisecond

func (a *app) renewCommand() *cobra.Command {
	var (
		every, allNamespaces, cluster, wait, force bool
		selector                                   string
		timeout                                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "renew NAME... | --all | -l SELECTOR [-A] [--cluster] [--wait [--timeout 2m]] [--force]",
		Short: "Have the operator log in again now for a new token (the force-refresh annotation)",
		Long: `Have the operator log in again now: sets the annotation ` + tokensyncv1alpha1.AnnotationForceRefresh + `
to a new value on each TokenRequest (with --cluster, ClusterTokenRequest). Give NAMEs, --all or -l.

With --all or -l, TokenRequests the operator stopped after the provider rejected their
credentials are skipped, and named: a refresh would send the rejected credentials once more,
a step closer to the provider locking the account. Fix the credentials Secret (the operator
retries at once), or name them, or add --force.

--wait waits until each has a new token, and otherwise exits 1 naming those that have none and
why: suspended, stopped after rejected credentials, waiting for a provider that is down, or for
the minimum login interval (10s by default) since the last login.

Needs the right to patch TokenRequests (the edit role), or ClusterTokenRequests (the
ClusterTokenRequest editor ClusterRole).`,
		Example: `  {{.}} renew partner-token -n team-a --wait
  {{.}} renew --all -n team-a
  {{.}} renew -l team=payments -A --wait --timeout 5m
  {{.}} renew --cluster shared-token`,
		RunE: func(cmd *cobra.Command, names []string) error {
			given := 0
			for _, b := range []bool{len(names) > 0, every, selector != ""} {
				if b {
					given++
				}
			}
			if given != 1 {
				return usageError(cmd, "give exactly one of: NAMEs, --all, -l SELECTOR")
			}
			if allNamespaces && len(names) > 0 {
				return usageError(cmd, "-A goes with --all or -l: a NAME is looked up in one namespace (-n)")
			}
			if cmd.Flags().Changed("timeout") && !wait {
				return usageError(cmd, "--timeout goes with --wait")
			}
			if timeout <= 0 {
				return usageError(cmd, "--timeout must be positive")
			}
			sel, err := a.selection(cmd, names, allNamespaces, selector, cluster)
			if err != nil {
				return err
			}
			return a.runRenew(cmd.Context(), sel, force, wait, timeout)
		},
	}
	cmd.Flags().BoolVar(&every, "all", false, "Every TokenRequest of the namespace (-A: of every namespace).")
	a.selectionFlags(cmd, &allNamespaces, &selector, &cluster)
	cmd.Flags().BoolVar(&wait, "wait", false, "Wait until each has a new token; exit 1 naming those that have none, and why.")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "How long --wait waits.")
	cmd.Flags().BoolVar(&force, "force", false, "With --all or -l, renew also those stopped after rejected credentials.")
	exampleName(cmd, a.name)
	return cmd
}

// renewing is one object asked to renew.
type renewing struct {
	obj tokenObject
	req renewRequest
}

func (a *app) runRenew(ctx context.Context, sel selection, force, wait bool, timeout time.Duration) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	objs, errs := fetch(ctx, c, sel)
	bulk := len(sel.names) == 0
	if bulk && len(objs) == 0 && len(errs) == 0 {
		return fmt.Errorf("no %ss found%s: nothing to renew", sel.kind(), sel.where())
	}
	out := a.env.Stdout
	value := forceValue(a.env.Clock.Now(), objs)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		tokensyncv1alpha1.AnnotationForceRefresh: value,
	}}})
	if err != nil {
		return err
	}
	var asked []renewing
	for _, o := range objs {
		if stopped := stoppedAfterRejection(o.Status); stopped != "" {
			if bulk && !force {
				fmt.Fprintf(out, "Skipped %s: %s; fix its credentials Secret (the operator then retries at once), or renew it by name or with --force to send them once more\n", o, stopped)
				continue
			}
			fmt.Fprintf(out, "Note: %s was %s; this sends its credentials once more\n", o, stopped)
		}
		before := *o.Status.DeepCopy()
		if err := c.Patch(ctx, o.Object, client.RawPatch(types.MergePatchType, patch)); err != nil {
			errs = append(errs, refused(err, "set "+tokensyncv1alpha1.AnnotationForceRefresh+" on "+o.String(), sel.role(true)))
			continue
		}
		fmt.Fprintf(out, "Requested a new token for %s\n", o)
		asked = append(asked, renewing{obj: o, req: renewRequest{value: value, before: before}})
	}
	if wait && len(asked) > 0 {
		errs = append(errs, a.waitRenewed(ctx, c, asked, timeout)...)
	}
	return reportAll(a.env.Stderr, errs)
}

// waitRenewed waits until each object has a new token, or cannot get one
// without someone acting, or the time is up; it returns an error for each
// without a new token, saying why.
func (a *app) waitRenewed(ctx context.Context, c client.Client, asked []renewing, timeout time.Duration) []error {
	clk := a.env.Clock
	deadline := clk.Now().Add(timeout)
	pending := asked
	why := map[string]string{}
	var errs []error
	for {
		var still []renewing
		for _, r := range pending {
			o, err := r.obj.refetch(ctx, c)
			if err != nil {
				why[o.key()] = "could not read it: " + err.Error()
				still = append(still, r)
				continue
			}
			r.obj = o
			if renewed(o.Status, r.req) {
				fmt.Fprintf(a.env.Stdout, "%s has a new token, which expires %s%s\n", o, relativeMeta(clk.Now(), o.Status.ExpiresAt), notWrittenIn(o))
				continue
			}
			reason, final := notRenewed(o.Spec.Suspend, o.Status, r.req, clk.Now())
			if final {
				errs = append(errs, fmt.Errorf("%s will not get a new token: %s", o, reason))
				continue
			}
			why[o.key()] = reason
			still = append(still, r)
		}
		pending = still
		if len(pending) == 0 {
			return errs
		}
		if !clk.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return append(errs, ctx.Err())
		case <-clk.After(renewPoll):
		}
	}
	for _, r := range pending {
		errs = append(errs, fmt.Errorf("%s has no new token after %s: %s", r.obj, humanDuration(timeout), why[r.obj.key()]))
	}
	return errs
}

// forceValue is the force-refresh annotation's new value: the time, made
// unlike any value the objects hold (a value they hold already would be no
// request at all).
func forceValue(now time.Time, objs []tokenObject) string {
	for {
		value := now.UTC().Format(time.RFC3339Nano)
		taken := false
		for _, o := range objs {
			taken = taken || o.Object.GetAnnotations()[tokensyncv1alpha1.AnnotationForceRefresh] == value || o.Status.LastForceRefresh == value
		}
		if !taken {
			return value
		}
		now = now.Add(time.Nanosecond)
	}
}

// notWrittenIn says in how many namespaces a ClusterTokenRequest's token
// could not be written, "" when in none (and for a TokenRequest).
func notWrittenIn(o tokenObject) string {
	if o.Cluster == nil || o.Cluster.Status.Namespaces.Failed == 0 {
		return ""
	}
	n := o.Cluster.Status.Namespaces
	return fmt.Sprintf("; but it is not written in %d of %d namespaces (status --cluster %s says why)", n.Failed, n.Selected, o.Object.GetName())
}
