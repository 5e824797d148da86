package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// Where the operator runs by default: the namespace the README installs
// the chart (and config/default) into, and the manager's
// --leader-election-id default (main.go), which neither changes.
const (
	defaultOperatorNamespace = "tokensync-system"
	defaultLease             = "tokensync.tokensync.io"
)

// checkPoll is how often check --wait tries again.
const checkPoll = 2 * time.Second

// operatorFlags are the flags that find the operator: --operator-namespace
// and --lease.
func operatorFlags(cmd *cobra.Command, namespace, lease *string) {
	cmd.Flags().StringVar(namespace, "operator-namespace", defaultOperatorNamespace, "Namespace the operator runs in.")
	cmd.Flags().StringVar(lease, "lease", defaultLease, "Name of the operator's leader election Lease (its --leader-election-id).")
}

func (a *app) checkCommand() *cobra.Command {
	var (
		wait              time.Duration
		operatorNamespace string
		lease             string
	)
	cmd := &cobra.Command{
		Use:   "check [--wait DURATION] [--operator-namespace NS] [--lease NAME]",
		Short: "Check that tokensync is ready: CRDs served, a TokenRequest admitted, the operator leading",
		Long: `Check that tokensync is ready: its CRDs are installed and served, a TokenRequest is admitted
in the namespace (-n; a server-side dry run: nothing is created), and the operator's leader
election Lease is held and was renewed in the last 30s. Exits 0 with "tokensync is ready", or 1
naming what is missing or what you may not read; with --wait, tries until it is ready and exits
124 when the time is up.`,
		Example: `  # In CI, after installing the chart
  {{.}} check --wait 2m
  # An operator installed elsewhere
  {{.}} check --operator-namespace platform --lease tokensync.tokensync.io`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wait < 0 {
				return usageError(cmd, "--wait must not be negative")
			}
			return a.runCheck(cmd.Context(), wait, types.NamespacedName{Namespace: operatorNamespace, Name: lease})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "Try until tokensync is ready, for up to this long (exit 124 when the time is up).")
	operatorFlags(cmd, &operatorNamespace, &lease)
	exampleName(cmd, a.name)
	return cmd
}

// checkResult is one check: what it found, and whether that is fine.
type checkResult struct {
	Name    string
	OK      bool
	Message string
}

func (a *app) runCheck(ctx context.Context, wait time.Duration, lease types.NamespacedName) error {
	ns, err := a.namespace()
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	disc, err := a.discovery()
	if err != nil {
		return err
	}
	clk := a.env.Clock
	deadline := clk.Now().Add(wait)
	var results []checkResult
	for {
		results = checkOnce(ctx, c, disc, ns, lease, clk.Now)
		if wait == 0 || allOK(results) || !clk.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-clk.After(checkPoll):
		}
	}
	printChecks(a, results)
	if allOK(results) {
		fmt.Fprintln(a.env.Stdout, "tokensync is ready")
		return nil
	}
	var failed []string
	for _, r := range results {
		if !r.OK {
			failed = append(failed, r.Name)
		}
	}
	what := "the " + strings.Join(failed, " and ") + " check"
	if len(failed) > 1 {
		what += "s"
	}
	if wait > 0 {
		return &exitError{code: exitTimeout, err: fmt.Errorf("tokensync is not ready after %s: %s failed (above)", humanDuration(wait), what)}
	}
	return fmt.Errorf("tokensync is not ready: %s failed (above)", what)
}

func allOK(results []checkResult) bool {
	return !slices.ContainsFunc(results, func(r checkResult) bool { return !r.OK })
}

func printChecks(a *app, results []checkResult) {
	for _, r := range results {
		mark := "ok  "
		if !r.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(a.env.Stdout, "[%s] %s: %s\n", mark, r.Name, r.Message)
	}
}

// checkOnce runs the three checks.
func checkOnce(ctx context.Context, c client.Client, disc discovery.DiscoveryInterface, ns string, lease types.NamespacedName, now func() time.Time) []checkResult {
	crds := checkCRDs(disc)
	admission := checkResult{Name: "Admission", Message: "not tried: the CRDs are not served"}
	if crds.OK {
		admission = checkAdmission(ctx, c, ns)
	}
	return []checkResult{crds, admission, checkLease(ctx, c, lease, now)}
}

// servedResources are the resources the CRDs serve.
var servedResources = []string{"tokenrequests", "clustertokenrequests"}

func checkCRDs(disc discovery.DiscoveryInterface) checkResult {
	r := checkResult{Name: "CRDs"}
	gv := tokensyncv1alpha1.GroupVersion.String()
	list, err := disc.ServerResourcesForGroupVersion(gv)
	if err != nil {
		if apierrors.IsNotFound(err) {
			r.Message = fmt.Sprintf("the API server serves no %s: the tokensync CRDs are not installed (the Helm chart installs them; or kubectl apply -k config/crd)", gv)
		} else {
			r.Message = refused(err, "read the API server's discovery of "+gv, "").Error()
		}
		return r
	}
	served := map[string]bool{}
	for _, res := range list.APIResources {
		served[res.Name] = true
	}
	var missing []string
	for _, name := range servedResources {
		if !served[name] {
			missing = append(missing, name+"."+tokensyncv1alpha1.GroupVersion.Group)
		}
	}
	if len(missing) > 0 {
		r.Message = fmt.Sprintf("the CRD of %s is not installed (%s is served, without it)", strings.Join(missing, " and "), gv)
		return r
	}
	r.OK = true
	r.Message = fmt.Sprintf("%s are served (%s)", strings.Join(servedResources, " and "), gv)
	return r
}

// checkAdmission creates a TokenRequest by server-side dry run: the API
// server validates and admits it (CRD schema and rules, webhooks, policies)
// and stores nothing.
func checkAdmission(ctx context.Context, c client.Client, ns string) checkResult {
	r := checkResult{Name: "Admission"}
	tr := &tokensyncv1alpha1.TokenRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "tokensync-check-", Namespace: ns},
		Spec: tokensyncv1alpha1.TokenRequestSpec{
			LoginSpec:            tokensyncv1alpha1.LoginSpec{Provider: tokensyncv1alpha1.ProviderPartner, Endpoint: "https://tokensync-check.example"},
			CredentialsSecretRef: tokensyncv1alpha1.SecretReference{Name: "tokensync-check"},
		},
	}
	if err := c.Create(ctx, tr, client.DryRunAll); err != nil {
		if apierrors.IsForbidden(err) {
			r.Message = refused(err, "create TokenRequests in namespace "+ns+", which the check does by dry run", roleEdit).Error()
		} else {
			r.Message = fmt.Sprintf("a TokenRequest in namespace %s was refused (server-side dry run): %v", ns, err)
		}
		return r
	}
	r.OK = true
	r.Message = fmt.Sprintf("a TokenRequest in namespace %s is admitted (server-side dry run)", ns)
	return r
}

func checkLease(ctx context.Context, c client.Client, key types.NamespacedName, now func() time.Time) checkResult {
	r := checkResult{Name: "Operator"}
	name := "Lease " + key.String()
	l := &coordinationv1.Lease{}
	if err := c.Get(ctx, key, l); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			r.Message = fmt.Sprintf("%s not found: no operator has run with leader election there (--operator-namespace, --lease)", name)
		case apierrors.IsForbidden(err):
			r.Message = refused(err, "read "+name, "get on leases.coordination.k8s.io in namespace "+key.Namespace).Error()
		default:
			r.Message = fmt.Sprintf("read %s: %v", name, err)
		}
		return r
	}
	t := now()
	if held, why := leaseHeld(l, t); !held {
		r.Message = name + " is " + why
		return r
	}
	r.OK = true
	r.Message = fmt.Sprintf("%s is held by %s, renewed %s", name, printable(*l.Spec.HolderIdentity), relative(t, l.Spec.RenewTime.Time))
	return r
}
