package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// managerLabels select the operator's Deployment, as the chart and
// config/manager label it.
var managerLabels = client.MatchingLabels{"app.kubernetes.io/name": "tokensync", "app.kubernetes.io/component": "manager"}

// managerContainer is the operator's container in its Deployment.
const managerContainer = "manager"

func (a *app) versionCommand() *cobra.Command {
	var operatorNamespace, lease string
	cmd := &cobra.Command{
		Use:   "version [--operator-namespace NS] [--lease NAME]",
		Short: "The plugin's version and, when you may read them, the operator's image and leader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.env.Stdout, "Plugin:    %s\n", a.env.Version)
			a.operatorVersion(cmd.Context(), a.env.Stdout, types.NamespacedName{Namespace: operatorNamespace, Name: lease})
			return nil
		},
	}
	operatorFlags(cmd, &operatorNamespace, &lease)
	return cmd
}

// operatorVersion prints the operator's Deployment image and Lease holder,
// or why they could not be read: the plugin's version is worth printing
// without them.
func (a *app) operatorVersion(ctx context.Context, out io.Writer, lease types.NamespacedName) {
	c, err := a.client()
	if err != nil {
		fmt.Fprintf(out, "Operator:  unknown: %s\n", printable(err.Error()))
		return
	}
	fmt.Fprintf(out, "Operator:  %s\n", deploymentImages(ctx, c, lease.Namespace))
	l := &coordinationv1.Lease{}
	switch err := c.Get(ctx, lease, l); {
	case apierrors.IsNotFound(err):
		fmt.Fprintf(out, "Leader:    none: Lease %s not found\n", lease)
	case err != nil:
		fmt.Fprintf(out, "Leader:    unknown: %s\n", printable(refused(err, "read Lease "+lease.String(), "").Error()))
	case l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "":
		fmt.Fprintf(out, "Leader:    none holds Lease %s\n", lease)
	default:
		renewed := "never renewed"
		if l.Spec.RenewTime != nil {
			renewed = "renewed " + relative(a.env.Clock.Now(), l.Spec.RenewTime.Time)
		}
		fmt.Fprintf(out, "Leader:    %s (Lease %s, %s)\n", printable(*l.Spec.HolderIdentity), lease, renewed)
	}
}

// deploymentImages names the operator's Deployments and their manager
// image, or why they could not be read.
func deploymentImages(ctx context.Context, c client.Client, ns string) string {
	list := &appsv1.DeploymentList{}
	if err := c.List(ctx, list, client.InNamespace(ns), managerLabels); err != nil {
		return "unknown: " + printable(refused(err, "list Deployments in namespace "+ns, "").Error())
	}
	var found []string
	for _, d := range list.Items {
		for _, ct := range d.Spec.Template.Spec.Containers {
			if ct.Name == managerContainer {
				found = append(found, fmt.Sprintf("%s (Deployment %s/%s)", printable(ct.Image), d.Namespace, d.Name))
			}
		}
	}
	if len(found) == 0 {
		return fmt.Sprintf("unknown: no Deployment labelled app.kubernetes.io/name=tokensync in namespace %s", ns)
	}
	slices.Sort(found)
	return strings.Join(found, ", ")
}
